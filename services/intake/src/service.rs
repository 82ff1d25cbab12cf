//! Intake's use cases. Each one that changes state runs in one transaction that also enqueues
//! the events the change causes, then wakes the relay and any watchers.

use std::sync::Arc;

use prost::Message;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tongban_auth::{Identity, Role};
use tongban_authz::{Action, Policy, Scope};
use tongban_calendar::Calendar;
use tongban_credit::CreditRegistry;
use tongban_matter::Regions;
use tongban_outbox::{RelayHandle, new_envelope, outbox};
use tongban_proto::{
    events::{self, ApplicationSnapshot, envelope::Payload},
    intake::{
        Application, ApplicationStatus, FieldType, FormField, ListApplicationsRequest,
        ListMattersRequest, MaterialRequirement, Matter, SubmitApplicationRequest,
        SupplementMaterialsRequest, WithdrawApplicationRequest,
    },
    page::Paging,
    time::ts,
};
use tongban_storage::begin_write;
use tongban_types::CreditCode;

use crate::{
    authz::application_scope,
    domain,
    error::Violation,
    error::{IntakeError, invalid},
    limits::{IntakeLimits, StreamCounter, StreamPermit, SubmitLimiter},
    matters::Matters,
    repository::{ApplicationStore, Involved, ListFilter, StaffFilter},
};

const PRODUCER: &str = "intake";

/// A change to one application, for watchers.
#[derive(Debug, Clone)]
pub struct Changed {
    pub application_id: String,
    pub event_type: String,
}

pub struct Intake {
    db: DatabaseConnection,
    matters: Matters,
    /// The region table project sites are checked against.
    regions: Regions,
    calendar: Calendar,
    relay: RelayHandle,
    changes: broadcast::Sender<Changed>,
    /// The authorization table and the registered integrators.
    policy: Policy,
    credit: Arc<dyn CreditRegistry>,
    limits: IntakeLimits,
    submit_limiter: Arc<SubmitLimiter>,
    watch_streams: StreamCounter,
}

impl Intake {
    pub fn new(
        db: DatabaseConnection,
        matters: Matters,
        regions: Regions,
        calendar: Calendar,
        relay: RelayHandle,
        credit: Arc<dyn CreditRegistry>,
    ) -> Self {
        let (changes, _) = broadcast::channel(1024);
        let limits = IntakeLimits::default();
        Self {
            db,
            matters,
            regions,
            calendar,
            relay,
            changes,
            policy: Policy::default(),
            credit,
            submit_limiter: Arc::new(SubmitLimiter::new(limits.submissions_per_minute)),
            limits,
            watch_streams: StreamCounter::default(),
        }
    }

    /// Decides with `policy` (the registered integrators); without it every integrator is
    /// denied.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The credit registry adapter (with its cache).
    pub fn credit(&self) -> &Arc<dyn CreditRegistry> {
        &self.credit
    }

    /// Replaces the default [`IntakeLimits`].
    pub fn with_limits(mut self, limits: IntakeLimits) -> Self {
        self.submit_limiter = Arc::new(SubmitLimiter::new(limits.submissions_per_minute));
        self.limits = limits;
        self
    }

    /// A permit to hold one more WatchApplication stream open for `who`, released when dropped;
    /// RESOURCE_EXHAUSTED beyond the configured number per caller.
    pub fn watch_permit(&self, who: &Identity) -> Result<StreamPermit, IntakeError> {
        let max = self.limits.watch_streams_per_caller;
        self.watch_streams
            .acquire(&who.actor_label(), max)
            .ok_or_else(|| IntakeError::Exhausted {
                message: format!("at most {max} open WatchApplication streams per caller"),
                retry_after: None,
            })
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn matters(&self) -> &Matters {
        &self.matters
    }

    pub fn relay(&self) -> RelayHandle {
        self.relay.clone()
    }

    pub fn subscribe_changes(&self) -> broadcast::Receiver<Changed> {
        self.changes.subscribe()
    }

    pub fn announce(&self, application_id: &str, event_type: &str) {
        let _ = self.changes.send(Changed {
            application_id: application_id.into(),
            event_type: event_type.into(),
        });
    }

    /// Accepts an application once. Returns it and whether this call created it.
    #[tracing::instrument(skip_all, fields(request_id = %req.request_id, matter = %req.matter_code))]
    pub async fn submit(
        &self,
        who: &Identity,
        req: SubmitApplicationRequest,
    ) -> Result<(Application, bool), IntakeError> {
        // The enterprise applied for. A malformed code names no enterprise: the request is
        // refused as invalid (naming the field), which writes nothing and reveals nothing.
        let claimed = match req
            .applicant
            .as_ref()
            .map(|a| CreditCode::parse(&a.credit_code))
        {
            Some(Ok(code)) => code.to_string(),
            Some(Err(_)) => {
                let matter = self.matters.latest(&req.matter_code);
                domain::validate_submission(
                    req.clone(),
                    matter.as_deref(),
                    &self.regions,
                    &self.calendar,
                    chrono::Utc::now(),
                    &self.limits.uri_schemes,
                )
                .map_err(IntakeError::Invalid)?;
                String::new()
            }
            None => String::new(),
        };
        self.policy.check(
            who,
            Action::SubmitApplication,
            &Scope::application(claimed, req.matter_code.trim(), Vec::new()),
            req.request_id.trim(),
        )?;
        if let Err(wait) = self.submit_limiter.check(&who.subject) {
            return Err(IntakeError::Exhausted {
                message: format!(
                    "too many submissions; retry in {} ms",
                    wait.as_millis().max(1)
                ),
                retry_after: Some(wait),
            });
        }
        let fingerprint = hex::encode(Sha256::digest(req.encode_to_vec()));
        if let Some(existing) = self.replay(&req.request_id, &fingerprint).await? {
            return Ok((existing, false));
        }

        let now = chrono::Utc::now();
        let matter = self.matters.latest(&req.matter_code);
        let valid = domain::validate_submission(
            req,
            matter.as_deref(),
            &self.regions,
            &self.calendar,
            now,
            &self.limits.uri_schemes,
        )
        .map_err(IntakeError::Invalid)?;
        let matter_version = matter.map(|m| m.version).unwrap_or_default();
        let mut r = valid.request;
        // Before the transaction: a slow registry must not hold a database connection.
        let answer = self.credit.lookup(&valid.credit_code).await;
        if let Err(e) = &answer {
            tracing::warn!(error = %e, "credit registry did not answer; full review, no pledge path");
        }
        if let Some(a) = r.applicant.as_mut() {
            domain::stamp_credit(a, &answer, now);
        }
        let app = Application {
            application_id: tongban_types::new_id(),
            status: ApplicationStatus::Submitted as i32,
            version: 1,
            request_id: r.request_id.clone(),
            matter_code: r.matter_code.trim().to_string(),
            matter_version,
            applicant: r.applicant,
            form: r.form,
            materials: r.materials,
            commitments: r.commitments,
            owed_materials: valid.owed,
            pledge: r.pledge,
            create_time: Some(ts(now)),
            update_time: Some(ts(now)),
            status_reason: String::new(),
            deliveries: None,
            decision_number: String::new(),
        };
        let event = new_envelope(
            PRODUCER,
            &app.application_id,
            Payload::ApplicationSubmitted(events::ApplicationSubmitted {
                application: Some(snapshot(&app)),
            }),
        );

        let txn = begin_write(&self.db).await?;
        if !txn.insert_application(&app, &fingerprint).await? {
            // Lost a race with an identical (or conflicting) request id.
            txn.rollback().await?;
            return match self.replay(&app.request_id, &fingerprint).await? {
                Some(existing) => Ok((existing, false)),
                None => Err(IntakeError::RequestIdReused(app.request_id)),
            };
        }
        audit_act(&txn, who, &app, "submit", "", now.timestamp_millis()).await?;
        outbox::enqueue(&txn, std::slice::from_ref(&event)).await?;
        txn.commit().await?;
        self.relay.wake();
        self.announce(&app.application_id, &event.r#type);
        tracing::info!(application_id = %app.application_id, "application accepted");
        Ok((app, true))
    }

    /// The application an earlier identical request created; `RequestIdReused` if the id was
    /// used with a different body.
    async fn replay(
        &self,
        request_id: &str,
        fingerprint: &str,
    ) -> Result<Option<Application>, IntakeError> {
        let request_id = request_id.trim();
        if request_id.is_empty() {
            return Ok(None);
        }
        match self.db.find_by_request_id(request_id).await? {
            Some(s) if s.fingerprint == fingerprint => Ok(Some(s.application)),
            Some(_) => Err(IntakeError::RequestIdReused(request_id.to_string())),
            None => Ok(None),
        }
    }

    pub async fn get(
        &self,
        who: &Identity,
        application_id: &str,
    ) -> Result<Application, IntakeError> {
        self.get_for(who, Action::GetApplication, application_id)
            .await
    }

    /// The application, if `who` may do `action` (get or watch) on it.
    pub async fn get_for(
        &self,
        who: &Identity,
        action: Action,
        application_id: &str,
    ) -> Result<Application, IntakeError> {
        let app = self
            .db
            .find_application(application_id.trim())
            .await?
            .ok_or_else(|| IntakeError::NotFound(format!("application {application_id}")))?
            .application;
        let recorded = self.db.departments_of(&app.application_id).await?;
        let scope = application_scope(&self.matters, &app, recorded);
        self.policy
            .check(who, action, &scope, &app.application_id)?;
        Ok(app)
    }

    pub async fn list(
        &self,
        who: &Identity,
        req: &ListApplicationsRequest,
    ) -> Result<(Vec<Application>, String), IntakeError> {
        let page = APPLICATIONS.page::<String>(req.page_size, &req.page_token)?;
        let mut credit_code = (!req.credit_code.is_empty())
            .then(|| CreditCode::parse(&req.credit_code).map(|c| c.to_string()))
            .transpose()
            .map_err(|e| invalid("credit_code", e.to_string()))?;
        if who.role == Role::Applicant && credit_code.is_none() {
            // Filter in the query what the scope check below would keep anyway.
            let own = who.credit_code.as_ref().ok_or_else(|| {
                self.policy.deny(
                    who,
                    Action::ListApplications,
                    "applications",
                    tongban_authz::Denied::MissingClaim {
                        role: who.role,
                        claim: "credit_code",
                    },
                )
            })?;
            credit_code = Some(own.to_string());
        }
        let status = match ApplicationStatus::try_from(req.status) {
            Ok(ApplicationStatus::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => return Err(invalid("status", "unknown status")),
        };
        // Staff: filter in the query by the departments recorded in each workflow (and the
        // matters their department leads), so that a page is full and paging stays correct.
        let staff = matches!(who.role, Role::Clerk | Role::Supervisor).then(|| {
            let department = who.department.as_deref().unwrap_or_default().trim();
            StaffFilter {
                department: department.to_string(),
                led_matters: self
                    .matters
                    .all_latest()
                    .iter()
                    .filter(|m| !department.is_empty() && m.lead_department == department)
                    .map(|m| m.code.clone())
                    .collect(),
            }
        });
        let filter = ListFilter {
            status,
            matter_code: (!req.matter_code.is_empty()).then(|| req.matter_code.clone()),
            credit_code,
            region_prefix: (!req.region_prefix.is_empty()).then(|| req.region_prefix.clone()),
            staff,
            before_id: page.after.clone(),
            limit: page.fetch_limit(),
        };
        let mut apps = self.db.list_applications(&filter).await?;
        let next = page.finish(&mut apps, |a| a.application_id.clone());
        // The table still decides every row (integrators are filtered only here, staff rows
        // the query let through pass); a page may then come out shorter than asked, and the
        // token still resumes after the last row read.
        let ids: Vec<String> = apps.iter().map(|a| a.application_id.clone()).collect();
        let mut recorded = self.db.departments_of_all(&ids).await?;
        apps.retain(|a| {
            let departments = recorded.remove(&a.application_id).unwrap_or_default();
            self.policy.allows(
                who,
                Action::ListApplications,
                &application_scope(&self.matters, a, departments),
            )
        });
        Ok((apps, next))
    }

    #[tracing::instrument(skip_all, fields(application_id = %req.application_id))]
    pub async fn supplement(
        &self,
        who: &Identity,
        mut req: SupplementMaterialsRequest,
    ) -> Result<Application, IntakeError> {
        if req.materials.is_empty() {
            return Err(invalid("materials", "at least one material is needed"));
        }
        if req.note.chars().count() > domain::MAX_TEXT {
            return Err(invalid(
                "note",
                format!("must be at most {} characters", domain::MAX_TEXT),
            ));
        }
        let txn = begin_write(&self.db).await?;
        let mut app = txn
            .find_application_for_update(req.application_id.trim())
            .await?
            .ok_or_else(|| IntakeError::NotFound(format!("application {}", req.application_id)))?
            .application;
        let recorded = txn.departments_of(&app.application_id).await?;
        self.policy.check(
            who,
            Action::SupplementMaterials,
            &application_scope(&self.matters, &app, recorded),
            &app.application_id,
        )?;
        check_version(req.expected_version, app.version)?;
        if domain::is_final(app.status()) {
            return Err(IntakeError::FailedPrecondition(format!(
                "application is {}; nothing can be supplemented",
                app.status().as_str_name()
            )));
        }
        let matter = self.matters.latest(&app.matter_code).ok_or_else(|| {
            IntakeError::FailedPrecondition(format!(
                "matter {} is no longer known",
                app.matter_code
            ))
        })?;
        let mut violations: Vec<Violation> = Vec::new();
        let provided = domain::validate_materials(
            &mut req.materials,
            &matter,
            &self.limits.uri_schemes,
            &mut violations,
        );
        if !violations.is_empty() {
            return Err(IntakeError::Invalid(violations));
        }
        let now = chrono::Utc::now();
        let note = req.note.clone();
        let mut fulfilled = Vec::new();
        for owed in app
            .owed_materials
            .iter_mut()
            .filter(|o| o.fulfilled_time.is_none())
        {
            if provided.contains(&owed.material_kind) {
                owed.fulfilled_time = Some(ts(now));
                fulfilled.push(owed.material_kind.clone());
            }
        }
        // 容缺受理: a suspended application resumes once nothing overdue is owed any more.
        let was_suspended = app.status() == ApplicationStatus::Suspended;
        if was_suspended
            && !app.owed_materials.iter().any(|o| {
                o.fulfilled_time.is_none()
                    && o.due_time
                        .as_ref()
                        .and_then(tongban_proto::time::from_ts)
                        .is_some_and(|due| due <= now)
            })
        {
            app.set_status(ApplicationStatus::InReview);
            app.status_reason.clear();
        }
        let was_requested = app.status() == ApplicationStatus::SupplementRequested;
        if !was_requested && fulfilled.is_empty() {
            return Err(IntakeError::FailedPrecondition(
                "no supplement was requested and none of these materials is owed".into(),
            ));
        }
        if was_requested {
            app.set_status(ApplicationStatus::InReview);
            app.status_reason.clear();
        }
        app.materials.extend(req.materials.iter().cloned());
        app.version += 1;
        app.update_time = Some(ts(now));
        let event = new_envelope(
            PRODUCER,
            &app.application_id,
            Payload::ApplicationSupplemented(events::ApplicationSupplemented {
                materials: req.materials,
                note: req.note,
                fulfilled_kinds: fulfilled,
            }),
        );
        txn.update_application(&app).await?;
        audit_act(&txn, who, &app, "supplement", &note, now.timestamp_millis()).await?;
        outbox::enqueue(&txn, std::slice::from_ref(&event)).await?;
        txn.commit().await?;
        self.relay.wake();
        self.announce(&app.application_id, &event.r#type);
        Ok(app)
    }

    #[tracing::instrument(skip_all, fields(application_id = %req.application_id))]
    pub async fn withdraw(
        &self,
        who: &Identity,
        req: WithdrawApplicationRequest,
    ) -> Result<Application, IntakeError> {
        if req.reason.chars().count() > domain::MAX_TEXT {
            return Err(invalid(
                "reason",
                format!("must be at most {} characters", domain::MAX_TEXT),
            ));
        }
        let txn = begin_write(&self.db).await?;
        let mut app = txn
            .find_application_for_update(req.application_id.trim())
            .await?
            .ok_or_else(|| IntakeError::NotFound(format!("application {}", req.application_id)))?
            .application;
        let recorded = txn.departments_of(&app.application_id).await?;
        self.policy.check(
            who,
            Action::WithdrawApplication,
            &application_scope(&self.matters, &app, recorded),
            &app.application_id,
        )?;
        check_version(req.expected_version, app.version)?;
        if domain::is_final(app.status()) {
            return Err(IntakeError::FailedPrecondition(format!(
                "application is already {}",
                app.status().as_str_name()
            )));
        }
        let now = chrono::Utc::now();
        app.set_status(ApplicationStatus::Withdrawn);
        app.status_reason = req.reason.trim().to_string();
        app.version += 1;
        app.update_time = Some(ts(now));
        let event = new_envelope(
            PRODUCER,
            &app.application_id,
            Payload::ApplicationWithdrawn(events::ApplicationWithdrawn {
                reason: app.status_reason.clone(),
            }),
        );
        txn.update_application(&app).await?;
        audit_act(
            &txn,
            who,
            &app,
            "withdraw",
            &app.status_reason,
            now.timestamp_millis(),
        )
        .await?;
        outbox::enqueue(&txn, std::slice::from_ref(&event)).await?;
        txn.commit().await?;
        self.relay.wake();
        self.announce(&app.application_id, &event.r#type);
        Ok(app)
    }

    /// The latest version of every matter, by code, one page at a time.
    pub fn list_matters(
        &self,
        who: &Identity,
        req: &ListMattersRequest,
    ) -> Result<(Vec<Matter>, String), IntakeError> {
        self.policy
            .check(who, Action::ListMatters, &Scope::default(), "matters")?;
        let page = MATTERS.page::<String>(req.page_size, &req.page_token)?;
        let mut latest = self.matters.all_latest();
        latest.sort_by(|a, b| a.code.cmp(&b.code));
        let (latest, next) = page.slice(&latest, |m| m.code.clone());
        let matters = latest
            .iter()
            .map(|m| Matter {
                code: m.code.clone(),
                version: m.version,
                name: m.name.clone(),
                name_en: m.name_en.clone(),
                materials: m
                    .materials
                    .iter()
                    .map(|r| MaterialRequirement {
                        kind: r.kind.clone(),
                        name: r.name.clone(),
                        required: r.required,
                        may_owe: r.may_owe,
                        max_owed_days: r.max_owed_days.unwrap_or(0),
                    })
                    .collect(),
                fields: m
                    .form
                    .fields()
                    .iter()
                    .map(|f| FormField {
                        name: f.name.clone(),
                        label: f.label.clone(),
                        r#type: field_type(&f.ty) as i32,
                        required: f.required,
                        allowed: match &f.ty {
                            tongban_matter::FieldType::Enum { allowed } => allowed.clone(),
                            _ => Vec::new(),
                        },
                    })
                    .collect(),
                allows_pledge: m.pledge.is_some(),
            })
            .collect();
        Ok((matters, next))
    }
}

/// Paging of ListApplications: newest first, resumed after the last application id.
const APPLICATIONS: Paging = Paging::new("intake.applications", 50, 200);
/// Paging of ListMatters: by code, resumed after the last code.
const MATTERS: Paging = Paging::new("intake.matters", 50, 200);

fn field_type(t: &tongban_matter::FieldType) -> FieldType {
    use tongban_matter::FieldType as T;
    match t {
        T::String { .. } => FieldType::String,
        T::Integer { .. } => FieldType::Integer,
        T::Number { .. } => FieldType::Number,
        T::Boolean => FieldType::Boolean,
        T::Date => FieldType::Date,
        T::Enum { .. } => FieldType::Enum,
    }
}

fn check_version(expected: i64, actual: i64) -> Result<(), IntakeError> {
    if expected != 0 && expected != actual {
        return Err(IntakeError::StaleVersion { expected, actual });
    }
    Ok(())
}

/// The audit actor of `who` acting on `app`: staff and integrators act on behalf of the
/// applicant enterprise, whose credit code the entry names.
pub fn audit_actor(who: &Identity, app: &Application) -> tongban_audit::Actor {
    let mut actor = tongban_audit::Actor::from(who);
    if actor.on_behalf_of.is_empty()
        && let Some(a) = &app.applicant
    {
        actor.on_behalf_of = a.credit_code.clone();
    }
    actor
}

/// Appends `action` by `who` on `app` to the application's audit chain, in `txn`.
async fn audit_act(
    txn: &sea_orm::DatabaseTransaction,
    who: &Identity,
    app: &Application,
    action: &str,
    reason: &str,
    now_ms: i64,
) -> Result<(), IntakeError> {
    tongban_audit::append(
        txn,
        &tongban_audit::application_chain(&app.application_id),
        now_ms,
        tongban_audit::Act::done(audit_actor(who, app), action, &app.application_id).reason(reason),
    )
    .await?;
    Ok(())
}

/// The canonical snapshot other services receive in `application.submitted`.
pub fn snapshot(app: &Application) -> ApplicationSnapshot {
    ApplicationSnapshot {
        application_id: app.application_id.clone(),
        request_id: app.request_id.clone(),
        matter_code: app.matter_code.clone(),
        matter_version: app.matter_version,
        applicant: app.applicant.clone(),
        form: app.form.clone(),
        materials: app.materials.clone(),
        commitments: app.commitments.clone(),
        owed_materials: app.owed_materials.clone(),
        pledge: app.pledge.clone(),
        submit_time: app.create_time,
    }
}

/// Shared handle used by the gRPC layer and the consumer.
pub type SharedIntake = Arc<Intake>;

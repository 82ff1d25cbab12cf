//! Dispatch's staff-facing use cases: the ledger views and the tools around it (retry, replay,
//! reconcile). Each asks the authorization table ([`crate::authz`]) first; lists keep what the
//! caller's scope covers.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sea_orm::DatabaseConnection;
use tongban_auth::{Identity, Role};
use tongban_authz::{Action, Scope};
use tongban_proto::{dispatch as pb, page::Paging};

use crate::{
    authz::Authz,
    error::{DispatchError, invalid},
    ledger::{self, ApplicationSnapshots, DeliveryLedger, Involved, Status},
    worker::PlatformRuntime,
};

/// Paging of ListDeliveries: oldest first, resumed after the last delivery id.
const DELIVERIES: Paging = Paging::new("dispatch.deliveries", 50, 500);
/// Paging of ListPlatforms: configuration order, resumed after the last position.
const PLATFORMS: Paging = Paging::new("dispatch.platforms", 50, 200);

/// Dispatch's own audit chain (`service/dispatch`) holds its acts on no one application.
pub const SERVICE: &str = "dispatch";

pub struct Dispatch {
    db: DatabaseConnection,
    platforms: Arc<Vec<Arc<PlatformRuntime>>>,
    http: reqwest::Client,
    authz: Authz,
}

impl Dispatch {
    pub fn new(
        db: DatabaseConnection,
        platforms: Arc<Vec<Arc<PlatformRuntime>>>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            db,
            platforms,
            http,
            authz: Authz::default(),
        }
    }

    /// Decides with `authz` (integrators, departments, matters); without it only admins and
    /// reference-data readers get through.
    pub fn with_authz(mut self, authz: Authz) -> Self {
        self.authz = authz;
        self
    }

    /// The scope of one application, from its stored canonical section and the departments
    /// recorded in its workflow.
    async fn application_scope(&self, application_id: &str) -> Result<Scope, DispatchError> {
        let section = self.db.load_application(application_id).await?;
        let recorded = self.db.departments_of(application_id).await?;
        Ok(self.authz.application_scope(section.as_ref(), recorded))
    }

    fn platform(&self, id: &str) -> Result<&Arc<PlatformRuntime>, DispatchError> {
        self.platforms
            .iter()
            .find(|p| p.config.id == id)
            .ok_or_else(|| DispatchError::NotFound(format!("platform {id}")))
    }

    fn wake(&self, platform_id: Option<&str>) {
        for p in self.platforms.iter() {
            if platform_id.is_none_or(|id| id == p.config.id) {
                p.wake.notify_one();
            }
        }
    }

    /// The configured platforms in configuration order, one page at a time.
    pub async fn list_platforms(
        &self,
        who: &Identity,
        req: &pb::ListPlatformsRequest,
    ) -> Result<(Vec<pb::Platform>, String), DispatchError> {
        self.authz
            .policy()
            .check(who, Action::ListPlatforms, &Scope::default(), "platforms")?;
        let page = PLATFORMS.page::<usize>(req.page_size, &req.page_token)?;
        let counts = self.db.delivery_counts().await?;
        let n = |id: &str, s: Status| counts.get(&(id.to_string(), s)).copied().unwrap_or(0);
        let positions: Vec<usize> = (0..self.platforms.len()).collect();
        let (positions, next) = page.slice(&positions, |i| *i);
        let platforms = positions
            .iter()
            .filter_map(|i| self.platforms.get(*i))
            .map(|p| {
                let c = &p.config;
                pb::Platform {
                    platform_id: c.id.clone(),
                    name: c.name.clone(),
                    endpoint: c.endpoint.clone(),
                    auth_kind: auth_kind(&c.auth) as i32,
                    event_types: c.event_types.clone(),
                    concurrency: u32::try_from(c.concurrency).unwrap_or(u32::MAX),
                    timeout: prost_types::Duration::try_from(c.timeout).ok(),
                    max_attempts: c.retry.max_attempts,
                    circuit: p.circuit_state() as i32,
                    succeeded: n(&c.id, Status::Succeeded),
                    pending: n(&c.id, Status::Pending),
                    dead_lettered: n(&c.id, Status::DeadLettered),
                }
            })
            .collect();
        Ok((platforms, next))
    }

    pub async fn list_deliveries(
        &self,
        who: &Identity,
        req: &pb::ListDeliveriesRequest,
    ) -> Result<(Vec<pb::Delivery>, String), DispatchError> {
        self.authz
            .policy()
            .check_role(who, Action::ListDeliveries)?;
        let page = DELIVERIES.page::<String>(req.page_size, &req.page_token)?;
        let status = match pb::DeliveryStatus::try_from(req.status) {
            Ok(pb::DeliveryStatus::Unspecified) => None,
            Ok(s) => Status::try_from(s).ok(),
            Err(_) => return Err(invalid("status", format!("unknown value {}", req.status))),
        };
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let application_id = non_empty(&req.application_id);
        if let Some(app) = &application_id {
            // One application asked for: the caller may read its ledger, or is refused.
            let scope = self.application_scope(app).await?;
            self.authz
                .policy()
                .check(who, Action::ListDeliveries, &scope, app)?;
        }
        let filter = ledger::Filter {
            application_id,
            platform_id: non_empty(&req.platform_id),
            status,
            after_id: page.after.clone(),
            limit: page.fetch_limit(),
        };
        let mut rows = self.db.list_deliveries(&filter).await?;
        let next = page.finish(&mut rows, |r| r.delivery_id.clone());
        if who.role != Role::Admin {
            // Keep the rows of applications in the caller's scope; the page may come out
            // shorter than asked, and the token still resumes after the last row read.
            let mut allowed: HashMap<String, bool> = HashMap::new();
            for r in &rows {
                if !allowed.contains_key(&r.application_id) {
                    let scope = self.application_scope(&r.application_id).await?;
                    let ok = self
                        .authz
                        .policy()
                        .allows(who, Action::ListDeliveries, &scope);
                    allowed.insert(r.application_id.clone(), ok);
                }
            }
            rows.retain(|r| allowed.get(&r.application_id).copied().unwrap_or(false));
        }
        Ok((rows.iter().map(ledger::Delivery::to_proto).collect(), next))
    }

    pub async fn retry_delivery(
        &self,
        who: &Identity,
        delivery_id: &str,
    ) -> Result<pb::Delivery, DispatchError> {
        self.authz.policy().check_role(who, Action::RetryDelivery)?;
        let id = delivery_id.trim();
        if id.is_empty() {
            return Err(invalid("delivery_id", "is required"));
        }
        let found = self
            .db
            .find_delivery(id)
            .await?
            .ok_or_else(|| DispatchError::NotFound(format!("delivery {id}")))?;
        let scope = self.application_scope(&found.application_id).await?;
        self.authz
            .policy()
            .check(who, Action::RetryDelivery, &scope, &found.application_id)?;
        let txn = tongban_storage::begin_write(&self.db).await?;
        let row = txn.retry_now(id).await?;
        tongban_audit::append(
            &txn,
            &tongban_audit::application_chain(&row.application_id),
            tongban_storage::now_ms(),
            tongban_audit::Act::done(tongban_audit::Actor::from(who), "delivery.retry", id)
                .reason(format!("platform {}", row.platform_id)),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(delivery_id = %id, actor = %who.actor_label(), "delivery retried by staff");
        self.wake(Some(&row.platform_id));
        Ok(row.to_proto())
    }

    /// Gives up on one dead letter, with the reason in the application's audit trail; the
    /// application's later deliveries to that platform go ahead.
    pub async fn discard_delivery(
        &self,
        who: &Identity,
        req: &pb::DiscardDeliveryRequest,
    ) -> Result<pb::Delivery, DispatchError> {
        self.authz
            .policy()
            .check_role(who, Action::DiscardDelivery)?;
        let id = req.delivery_id.trim();
        if id.is_empty() {
            return Err(invalid("delivery_id", "is required"));
        }
        let reason = req.reason.trim();
        if reason.is_empty() {
            return Err(invalid(
                "reason",
                "is required: say why the platform will never get this delivery",
            ));
        }
        let found = self
            .db
            .find_delivery(id)
            .await?
            .ok_or_else(|| DispatchError::NotFound(format!("delivery {id}")))?;
        let scope = self.application_scope(&found.application_id).await?;
        self.authz
            .policy()
            .check(who, Action::DiscardDelivery, &scope, &found.application_id)?;
        let txn = tongban_storage::begin_write(&self.db).await?;
        let already = found.status == Status::Discarded;
        let row = txn.discard(id).await?;
        if !already {
            tongban_audit::append(
                &txn,
                &tongban_audit::application_chain(&row.application_id),
                tongban_storage::now_ms(),
                tongban_audit::Act::done(tongban_audit::Actor::from(who), "delivery.discard", id)
                    .reason(format!("platform {}: {reason}", row.platform_id)),
            )
            .await?;
        }
        txn.commit().await?;
        tracing::info!(delivery_id = %id, actor = %who.actor_label(), "delivery discarded by staff");
        self.wake(Some(&row.platform_id));
        Ok(row.to_proto())
    }

    pub async fn replay_dead_letters(
        &self,
        who: &Identity,
        req: &pb::ReplayDeadLettersRequest,
    ) -> Result<u32, DispatchError> {
        self.authz
            .policy()
            .check_role(who, Action::ReplayDeadLetters)?;
        let platform = req.platform_id.trim();
        if !platform.is_empty() {
            self.platform(platform)?;
        }
        let application = req.application_id.trim();
        let platform_filter = (!platform.is_empty()).then_some(platform);
        // Decide what the caller may replay before writing anything.
        let apps: Option<Vec<String>> = if !application.is_empty() {
            let scope = self.application_scope(application).await?;
            self.authz
                .policy()
                .check(who, Action::ReplayDeadLetters, &scope, application)?;
            Some(vec![application.to_string()])
        } else if who.role == Role::Admin {
            None
        } else {
            // No application named: replay those the caller leads, and only those.
            let mut mine = Vec::new();
            for app in self.dead_lettered_applications(platform_filter).await? {
                let scope = self.application_scope(&app).await?;
                if self
                    .authz
                    .policy()
                    .allows(who, Action::ReplayDeadLetters, &scope)
                {
                    mine.push(app);
                }
            }
            Some(mine)
        };
        let txn = tongban_storage::begin_write(&self.db).await?;
        let n = match &apps {
            None => txn.replay_dead_letters(platform_filter, None).await?,
            Some(list) => {
                let mut n = 0;
                for app in list {
                    n += txn.replay_dead_letters(platform_filter, Some(app)).await?;
                }
                n
            }
        };
        // A replay of one application's letters belongs to its chain; a wider one to
        // dispatch's own.
        let chain = if application.is_empty() {
            tongban_audit::service_chain(SERVICE)
        } else {
            tongban_audit::application_chain(application)
        };
        tongban_audit::append(
            &txn,
            &chain,
            tongban_storage::now_ms(),
            tongban_audit::Act::done(
                tongban_audit::Actor::from(who),
                "dead_letters.replay",
                platform,
            )
            .reason(format!("{n} replayed")),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(replayed = n, platform, application, actor = %who.actor_label(), "dead letters replayed");
        self.wake((!platform.is_empty()).then_some(platform));
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Compares the ledger's delivered keys with the keys the platform reports holding.
    pub async fn reconcile(
        &self,
        who: &Identity,
        req: &pb::ReconcileRequest,
    ) -> Result<pb::ReconcileResponse, DispatchError> {
        self.authz.policy().check(
            who,
            Action::Reconcile,
            &Scope::default(),
            req.platform_id.trim(),
        )?;
        let id = req.platform_id.trim();
        if id.is_empty() {
            return Err(invalid("platform_id", "is required"));
        }
        let platform = self.platform(id)?;
        let held = self.held_keys(&platform.config).await?;
        let ledger_keys = self.db.delivery_keys(id).await?;
        let mut missing: Vec<String> = ledger_keys
            .iter()
            .filter(|(k, s)| **s == Status::Succeeded && !held.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        missing.sort();
        let mut extra: Vec<String> = held
            .iter()
            .filter(|k| !ledger_keys.contains_key(*k))
            .cloned()
            .collect();
        extra.sort();
        let matched = ledger_keys
            .iter()
            .filter(|(k, s)| **s == Status::Succeeded && held.contains(*k))
            .count();
        let txn = tongban_storage::begin_write(&self.db).await?;
        let redelivered = if req.redeliver_missing {
            txn.redeliver_keys(id, &missing).await?
        } else {
            0
        };
        tongban_audit::append(
            &txn,
            &tongban_audit::service_chain(SERVICE),
            tongban_storage::now_ms(),
            tongban_audit::Act::done(tongban_audit::Actor::from(who), "reconcile", id).reason(
                format!(
                    "missing {}, extra {}, matched {matched}, redelivered {redelivered}",
                    missing.len(),
                    extra.len()
                ),
            ),
        )
        .await?;
        txn.commit().await?;
        if redelivered > 0 {
            self.wake(Some(id));
        }
        tracing::info!(
            platform = id,
            missing = missing.len(),
            extra = extra.len(),
            matched,
            redelivered,
            "reconciled"
        );
        Ok(pb::ReconcileResponse {
            platform_id: id.to_string(),
            missing,
            extra,
            matched: u32::try_from(matched).unwrap_or(u32::MAX),
            redelivered: u32::try_from(redelivered).unwrap_or(u32::MAX),
        })
    }

    /// The applications with dead-lettered deliveries (to `platform` when given).
    async fn dead_lettered_applications(
        &self,
        platform: Option<&str>,
    ) -> Result<Vec<String>, DispatchError> {
        let mut out: Vec<String> = Vec::new();
        let mut after_id = None;
        loop {
            let rows = self
                .db
                .list_deliveries(&ledger::Filter {
                    application_id: None,
                    platform_id: platform.map(str::to_string),
                    status: Some(Status::DeadLettered),
                    after_id: after_id.clone(),
                    limit: 500,
                })
                .await?;
            for r in &rows {
                if !out.contains(&r.application_id) {
                    out.push(r.application_id.clone());
                }
            }
            match rows.last() {
                Some(last) if rows.len() == 500 => after_id = Some(last.delivery_id.clone()),
                _ => return Ok(out),
            }
        }
    }

    async fn held_keys(
        &self,
        config: &tongban_platform::PlatformConfig,
    ) -> Result<HashSet<String>, DispatchError> {
        let fail = |message: String| DispatchError::Platform {
            platform: config.id.clone(),
            message,
        };
        let mut req = self
            .http
            .get(&config.query_endpoint)
            .timeout(config.timeout);
        for (name, value) in config.auth.headers(b"", chrono::Utc::now()) {
            req = req.header(name, value);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| fail(format!("query failed: {e}")))?;
        if !resp.status().is_success() {
            return Err(fail(format!("query answered HTTP {}", resp.status())));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| fail(format!("query answer is not JSON: {e}")))?;
        let keys = body
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| fail("query answer has no `keys` array".into()))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect())
    }
}

fn auth_kind(a: &tongban_platform::AuthConfig) -> pb::AuthKind {
    match a {
        tongban_platform::AuthConfig::Bearer { .. } => pb::AuthKind::Bearer,
        tongban_platform::AuthConfig::Hmac { .. } => pb::AuthKind::Hmac,
    }
}

//! Intake's rules, as plain functions over protobuf values: what makes a submission valid, what
//! is owed under commitments, and how each event moves an application's status. No I/O here.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tongban_calendar::Calendar;
use tongban_matter::{MatterDefinition, Regions};
use tongban_proto::{
    common::{Applicant, CreditClass, Material, OwedMaterial},
    events::{Envelope, envelope::Payload},
    intake::{
        Application, ApplicationStatus, DeliveryProgress, PlatformDelivery, PlatformDeliveryState,
        SubmitApplicationRequest,
    },
    structs::struct_to_json,
    time::ts,
};
use tongban_types::{CreditCode, RegionCode};

use crate::error::Violation;

pub const MAX_REQUEST_ID: usize = 128;
pub const MAX_FORM_BYTES: usize = 64 * 1024;
pub const MAX_MATERIALS: usize = 100;
pub const MAX_TEXT: usize = 500;
pub const MAX_MATERIAL_BYTES: i64 = 4 * 1024 * 1024 * 1024;
/// Most commitments per application (one per owed material kind, so as many as materials).
pub const MAX_COMMITMENTS: usize = MAX_MATERIALS;
/// Longest id, code or kind (application ids, matter codes, material kinds), in bytes.
pub const MAX_ID: usize = 128;
/// Longest material URI, in bytes.
pub const MAX_URI: usize = 2048;
/// The hard bound on any commitment's working days, whatever a matter says: a year. Checked
/// before any calendar arithmetic.
pub const MAX_OWED_DAYS: u32 = 365;

/// A submission that passed validation, normalised (credit code upper-case, trimmed names).
#[derive(Debug, Clone)]
pub struct ValidSubmission {
    pub request: SubmitApplicationRequest,
    pub credit_code: CreditCode,
    pub region_code: RegionCode,
    pub owed: Vec<OwedMaterial>,
}

/// Checks a submission against its matter. Returns every violation at once, each naming the
/// field as the client sent it.
pub fn validate_submission(
    mut req: SubmitApplicationRequest,
    matter: Option<&MatterDefinition>,
    regions: &Regions,
    calendar: &Calendar,
    now: DateTime<Utc>,
    uri_schemes: &[String],
) -> Result<ValidSubmission, Vec<Violation>> {
    let mut v = Vec::new();
    let request_id = req.request_id.trim().to_string();
    if request_id.is_empty() {
        v.push(Violation::new("request_id", "must not be empty"));
    } else if request_id.len() > MAX_REQUEST_ID {
        v.push(Violation::new(
            "request_id",
            format!("must be at most {MAX_REQUEST_ID} characters"),
        ));
    } else if request_id.chars().any(|c| c.is_control()) {
        v.push(Violation::new(
            "request_id",
            "must not contain control characters",
        ));
    }
    req.request_id = request_id;

    if req.matter_code.len() > MAX_ID {
        v.push(Violation::new(
            "matter_code",
            format!("must be at most {MAX_ID} characters"),
        ));
        return Err(v);
    }
    let Some(matter) = matter else {
        v.push(Violation::new(
            "matter_code",
            if req.matter_code.trim().is_empty() {
                "must not be empty".to_string()
            } else {
                format!("unknown matter {:?} (see ListMatters)", req.matter_code)
            },
        ));
        return Err(v);
    };

    let (credit_code, region_code) = validate_applicant(req.applicant.as_mut(), &mut v);

    let form_bytes = req
        .form
        .as_ref()
        .map(prost::Message::encoded_len)
        .unwrap_or(0);
    if form_bytes > MAX_FORM_BYTES {
        v.push(Violation::new(
            "form",
            format!("is {form_bytes} bytes; at most {MAX_FORM_BYTES} allowed"),
        ));
    } else {
        let form = struct_to_json(req.form.as_ref());
        let violations = matter.form.validate(&form);
        if let Some(field) = &matter.site_region_field {
            let at = format!("form.{field}");
            // A missing value is already named by the schema (the field is required).
            if !violations.iter().any(|fv| fv.field == at) {
                validate_site_region(req.form.as_mut(), field, &at, regions, &mut v);
            }
        }
        for fv in violations {
            v.push(Violation::new(fv.field, fv.description));
        }
    }

    let provided = validate_materials(&mut req.materials, matter, uri_schemes, &mut v);

    let mut owed = Vec::new();
    let mut committed = HashSet::new();
    if req.commitments.len() > MAX_COMMITMENTS {
        v.push(Violation::new(
            "commitments",
            format!("at most {MAX_COMMITMENTS} commitments per application"),
        ));
        return Err(v);
    }
    for (i, c) in req.commitments.iter_mut().enumerate() {
        let at = |f: &str| format!("commitments[{i}].{f}");
        c.material_kind = c.material_kind.trim().to_string();
        c.statement = c.statement.trim().to_string();
        match matter.material(&c.material_kind) {
            None => v.push(Violation::new(
                at("material_kind"),
                format!("unknown material kind {:?}", c.material_kind),
            )),
            Some(_) if provided.contains(&c.material_kind) => v.push(Violation::new(
                at("material_kind"),
                "material is provided; no commitment needed",
            )),
            Some(req_m) if !req_m.may_owe => v.push(Violation::new(
                at("material_kind"),
                format!(
                    "{} cannot be owed (容缺); it must be provided now",
                    c.material_kind
                ),
            )),
            Some(req_m) => {
                let max = req_m.max_owed_days.unwrap_or(0).min(MAX_OWED_DAYS);
                if !committed.insert(c.material_kind.clone()) {
                    v.push(Violation::new(at("material_kind"), "duplicate commitment"));
                }
                // Range-checked before the calendar sees it: a hostile number is refused
                // without any arithmetic.
                if c.due_within_days == 0 || c.due_within_days > max {
                    v.push(Violation::new(
                        at("due_within_days"),
                        format!("must be 1 to {max} working days"),
                    ));
                } else {
                    owed.push(OwedMaterial {
                        material_kind: c.material_kind.clone(),
                        due_time: Some(ts(calendar.add_working_days(now, c.due_within_days))),
                        fulfilled_time: None,
                        statement: c.statement.clone(),
                    });
                }
            }
        }
        if c.statement.is_empty() || c.statement.chars().count() > MAX_TEXT {
            v.push(Violation::new(
                at("statement"),
                format!("must be 1 to {MAX_TEXT} characters"),
            ));
        }
    }
    for m in matter.materials.iter().filter(|m| m.required) {
        if !provided.contains(&m.kind) && !committed.contains(&m.kind) {
            let hint = if m.may_owe {
                " (or commit to supply it later)"
            } else {
                ""
            };
            v.push(Violation::new(
                "materials",
                format!("required material {} ({}) is missing{hint}", m.kind, m.name),
            ));
        }
    }

    if let Some(p) = req.pledge.as_mut() {
        p.statement = p.statement.trim().to_string();
        if p.signed && matter.pledge.is_none() {
            v.push(Violation::new(
                "pledge",
                format!("{} does not offer commitment-based approval", matter.code),
            ));
        }
        if p.signed && p.statement.is_empty() {
            v.push(Violation::new(
                "pledge.statement",
                "a signed pledge needs its statement",
            ));
        }
    }

    match (v.is_empty(), credit_code, region_code) {
        (true, Some(credit_code), Some(region_code)) => Ok(ValidSubmission {
            request: req,
            credit_code,
            region_code,
            owed,
        }),
        _ => Err(v),
    }
}

/// The project site (`site_region_field`): present, a well-formed region code and a region of
/// the deployment's table, since township routing follows it. Stored trimmed.
fn validate_site_region(
    form: Option<&mut prost_types::Struct>,
    field: &str,
    at: &str,
    regions: &Regions,
    v: &mut Vec<Violation>,
) {
    let value = form
        .and_then(|f| f.fields.get_mut(field))
        .and_then(|value| match value.kind.as_mut() {
            Some(prost_types::value::Kind::StringValue(s)) => Some(s),
            _ => None,
        });
    let Some(value) = value else {
        v.push(Violation::new(
            at,
            "the project site's region code is required",
        ));
        return;
    };
    match RegionCode::parse(value) {
        Err(e) => v.push(Violation::new(at, e.to_string())),
        Ok(code) if !regions.contains(code.as_str()) => v.push(Violation::new(
            at,
            format!("{code} is not a region this deployment serves"),
        )),
        Ok(code) => *value = code.to_string(),
    }
}

/// Checks and normalises materials; returns the kinds provided.
pub fn validate_materials(
    materials: &mut [Material],
    matter: &MatterDefinition,
    uri_schemes: &[String],
    v: &mut Vec<Violation>,
) -> HashSet<String> {
    let mut provided = HashSet::new();
    if materials.len() > MAX_MATERIALS {
        v.push(Violation::new(
            "materials",
            format!("at most {MAX_MATERIALS} materials per application"),
        ));
        return provided;
    }
    for (i, m) in materials.iter_mut().enumerate() {
        let at = |f: &str| format!("materials[{i}].{f}");
        m.kind = m.kind.trim().to_string();
        m.name = m.name.trim().to_string();
        m.sha256 = m.sha256.trim().to_ascii_lowercase();
        if matter.material(&m.kind).is_none() {
            v.push(Violation::new(
                at("kind"),
                format!("unknown material kind {:?} for {}", m.kind, matter.code),
            ));
        }
        if m.name.is_empty() || m.name.chars().count() > MAX_TEXT {
            v.push(Violation::new(
                at("name"),
                format!("must be 1 to {MAX_TEXT} characters"),
            ));
        }
        if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            v.push(Violation::new(at("sha256"), "must be 64 hex characters"));
        }
        if m.size_bytes <= 0 || m.size_bytes > MAX_MATERIAL_BYTES {
            v.push(Violation::new(
                at("size_bytes"),
                "must be between 1 byte and 4 GiB",
            ));
        }
        m.uri = m.uri.trim().to_string();
        if m.uri.is_empty() || m.uri.len() > MAX_URI {
            v.push(Violation::new(
                at("uri"),
                format!("must be 1 to {MAX_URI} characters"),
            ));
        } else if !uri_scheme_allowed(&m.uri, uri_schemes) {
            v.push(Violation::new(
                at("uri"),
                format!("must start with one of: {}", schemes_list(uri_schemes)),
            ));
        }
        provided.insert(m.kind.clone());
    }
    provided
}

/// Whether `uri` is `<scheme>://…` with a scheme in `allowed` (case-insensitive).
pub fn uri_scheme_allowed(uri: &str, allowed: &[String]) -> bool {
    uri.split_once("://").is_some_and(|(scheme, rest)| {
        !rest.is_empty() && allowed.iter().any(|a| a.eq_ignore_ascii_case(scheme))
    })
}

fn schemes_list(allowed: &[String]) -> String {
    allowed
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn validate_applicant(
    a: Option<&mut Applicant>,
    v: &mut Vec<Violation>,
) -> (Option<CreditCode>, Option<RegionCode>) {
    let Some(a) = a else {
        v.push(Violation::new("applicant", "is required"));
        return (None, None);
    };
    let credit = match CreditCode::parse(&a.credit_code) {
        Ok(c) => {
            a.credit_code = c.to_string();
            Some(c)
        }
        Err(e) => {
            v.push(Violation::new("applicant.credit_code", e.to_string()));
            None
        }
    };
    let region = match RegionCode::parse(&a.region_code) {
        Ok(r) => {
            a.region_code = r.to_string();
            Some(r)
        }
        Err(e) => {
            v.push(Violation::new("applicant.region_code", e.to_string()));
            None
        }
    };
    // Facts about the applicant come from their owners: the class from the credit registry
    // (looked up after validation), never from the request.
    if a.credit_class != CreditClass::Unspecified as i32 {
        v.push(Violation::new(
            "applicant.credit_class",
            "is output only: intake looks the class up in the credit registry",
        ));
    }
    for (set, field) in [
        (!a.credit_source.is_empty(), "applicant.credit_source"),
        (a.credit_as_of.is_some(), "applicant.credit_as_of"),
        (
            a.credit_checked_time.is_some(),
            "applicant.credit_checked_time",
        ),
    ] {
        if set {
            v.push(Violation::new(field, "is output only"));
        }
    }
    a.name = a.name.trim().to_string();
    if a.name.is_empty() || a.name.chars().count() > MAX_TEXT {
        v.push(Violation::new(
            "applicant.name",
            format!("must be 1 to {MAX_TEXT} characters"),
        ));
    }
    if let Some(c) = a.contact.as_mut() {
        c.email = c.email.trim().to_string();
        if !c.email.is_empty() && (!c.email.contains('@') || c.email.len() > 254) {
            v.push(Violation::new(
                "applicant.contact.email",
                "is not an e-mail address",
            ));
        }
        if !c.locale.is_empty() && !matches!(c.locale.as_str(), "zh-CN" | "en") {
            v.push(Violation::new(
                "applicant.contact.locale",
                "must be zh-CN or en",
            ));
        }
        if c.phone.chars().count() > 32 {
            v.push(Violation::new(
                "applicant.contact.phone",
                "must be at most 32 characters",
            ));
        }
    }
    (credit, region)
}

/// A rating as the applicant reads it: `unsatisfied`.
fn rating_word(r: tongban_proto::events::Rating) -> &'static str {
    use tongban_proto::events::Rating;
    match r {
        Rating::Satisfied => "satisfied",
        Rating::BasicallySatisfied => "basically_satisfied",
        Rating::Unsatisfied => "unsatisfied",
        Rating::Unspecified => "unrated",
    }
}

/// The credit class as the matter crate sees it.
pub fn credit_class(c: i32) -> Option<tongban_matter::CreditClass> {
    match CreditClass::try_from(c).ok()? {
        CreditClass::A => Some(tongban_matter::CreditClass::A),
        CreditClass::B => Some(tongban_matter::CreditClass::B),
        CreditClass::C => Some(tongban_matter::CreditClass::C),
        CreditClass::D => Some(tongban_matter::CreditClass::D),
        CreditClass::Unspecified => None,
    }
}

/// What the credit registry said, as it is written onto the applicant (output-only fields).
pub fn stamp_credit(
    applicant: &mut Applicant,
    answer: &Result<Option<tongban_credit::CreditRecord>, tongban_credit::CreditError>,
    now: DateTime<Utc>,
) {
    applicant.credit_checked_time = Some(ts(now));
    match answer {
        Ok(Some(r)) => {
            applicant.credit_class = match r.class {
                tongban_matter::CreditClass::A => CreditClass::A,
                tongban_matter::CreditClass::B => CreditClass::B,
                tongban_matter::CreditClass::C => CreditClass::C,
                tongban_matter::CreditClass::D => CreditClass::D,
            } as i32;
            applicant.credit_source = r.source.clone();
            applicant.credit_as_of = Some(ts(r.as_of));
        }
        // Unknown or unanswered: the class stays unset, so no pledge path (never fail open).
        Ok(None) => {
            applicant.credit_class = CreditClass::Unspecified as i32;
            applicant.credit_source = CREDIT_NOT_FOUND.into();
            applicant.credit_as_of = None;
        }
        Err(_) => {
            applicant.credit_class = CreditClass::Unspecified as i32;
            applicant.credit_source = CREDIT_UNAVAILABLE.into();
            applicant.credit_as_of = None;
        }
    }
}

/// `Applicant.credit_source` when the registry does not know the code.
pub const CREDIT_NOT_FOUND: &str = "not_found";
/// `Applicant.credit_source` when the registry did not answer.
pub const CREDIT_UNAVAILABLE: &str = "unavailable";

/// Statuses from which nothing but delivery progress changes any more.
pub fn is_final(s: ApplicationStatus) -> bool {
    matches!(
        s,
        ApplicationStatus::Approved
            | ApplicationStatus::Rejected
            | ApplicationStatus::Withdrawn
            | ApplicationStatus::Closed
            | ApplicationStatus::Revoked
    )
}

/// What an event does to an application: the new status and reason, or `None` when the event
/// does not concern intake's view (or arrives after a final status, out of order).
/// What dispatch reported about one delivery to one platform.
struct PlatformReport<'a> {
    platform_id: &'a str,
    delivery_id: &'a str,
    state: PlatformDeliveryState,
    receipt: &'a str,
    event_type: &'a str,
    at: Option<prost_types::Timestamp>,
}

/// Records dispatch's latest report on one platform. Reports can arrive in any order: the later
/// ledger line wins (ids are time-ordered, and one application's lines reach a platform in
/// order), then, for the same line, the later report; an older report changes nothing. A
/// receipt, once known, stays until a newer one comes.
fn note_platform(progress: &mut DeliveryProgress, r: PlatformReport<'_>) -> bool {
    let platform_id = r.platform_id;
    let key = |delivery_id: &str, t: &Option<prost_types::Timestamp>| {
        (
            delivery_id.to_string(),
            t.as_ref().map(|t| (t.seconds, t.nanos)),
        )
    };
    let i = match progress
        .per_platform
        .iter()
        .position(|p| p.platform_id == platform_id)
    {
        Some(i) => i,
        None => {
            progress.per_platform.push(PlatformDelivery {
                platform_id: platform_id.to_string(),
                ..Default::default()
            });
            progress.per_platform.len() - 1
        }
    };
    let entry = &mut progress.per_platform[i];
    let fresh = entry.state() == PlatformDeliveryState::Unspecified;
    let newer = key(r.delivery_id, &r.at) > key(&entry.delivery_id, &entry.update_time);
    if !fresh && !newer {
        return false;
    }
    entry.set_state(r.state);
    entry.event_type = r.event_type.to_string();
    entry.delivery_id = r.delivery_id.to_string();
    entry.update_time = r.at;
    if !r.receipt.is_empty() {
        entry.receipt = r.receipt.to_string();
    }
    progress
        .per_platform
        .sort_by(|a, b| a.platform_id.cmp(&b.platform_id));
    true
}

pub fn apply_event(app: &mut Application, env: &Envelope) -> bool {
    let status = app.status();
    let Some(payload) = &env.payload else {
        return false;
    };
    match payload {
        Payload::TaskCreated(_) if status == ApplicationStatus::Submitted => {
            app.set_status(ApplicationStatus::InReview);
            true
        }
        Payload::SupplementRequested(s) if !is_final(status) => {
            app.set_status(ApplicationStatus::SupplementRequested);
            app.status_reason = if s.requested_materials.is_empty() {
                s.comment.clone()
            } else {
                format!("{} ({})", s.comment, s.requested_materials.join(", "))
            };
            true
        }
        Payload::ApplicationApproved(a) if !is_final(status) => {
            app.set_status(ApplicationStatus::Approved);
            app.decision_number = a.decision_number.clone();
            app.status_reason = if a.on_pledge {
                "approved on pledge; verification follows".into()
            } else {
                String::new()
            };
            true
        }
        // The approval that a revocation or a closing overtook still brings its decision
        // number; the later status stays.
        Payload::ApplicationApproved(a)
            if matches!(
                status,
                ApplicationStatus::Revoked | ApplicationStatus::Closed
            ) && app.decision_number.is_empty()
                && !a.decision_number.is_empty() =>
        {
            app.decision_number = a.decision_number.clone();
            true
        }
        // 告知承诺制: only an approval can be revoked. A revocation that arrives before the
        // approval it revokes (a redelivery overtaken) still revokes: that approval was given.
        Payload::ApplicationRevoked(r)
            if status == ApplicationStatus::Approved || !is_final(status) =>
        {
            app.set_status(ApplicationStatus::Revoked);
            app.status_reason = format!("approval revoked: {}", r.reason);
            true
        }
        // 容缺受理: an owed material is overdue and the matter suspends the application.
        Payload::ApplicationSuspended(s)
            if !is_final(status) && status != ApplicationStatus::Suspended =>
        {
            let still_owed = app
                .owed_materials
                .iter()
                .any(|o| o.material_kind == s.material_kind && o.fulfilled_time.is_none());
            if !still_owed {
                // Supplied while the event was on its way: nothing to suspend.
                return false;
            }
            app.set_status(ApplicationStatus::Suspended);
            app.status_reason = format!(
                "suspended: owed material {} is overdue; supplement it to resume",
                s.material_kind
            );
            true
        }
        Payload::ApplicationRejected(r) if !is_final(status) => {
            app.set_status(ApplicationStatus::Rejected);
            app.status_reason = r.reason.clone();
            true
        }
        Payload::RequestAnswered(a) if !is_final(status) => {
            app.set_status(ApplicationStatus::InReview);
            app.status_reason = format!(
                "answered by {}; waiting for your rating: {}",
                a.department, a.answer
            );
            true
        }
        Payload::OutcomeRated(r) if r.reopened && !is_final(status) => {
            app.set_status(ApplicationStatus::InReview);
            app.status_reason = format!("reopened after rating {}", rating_word(r.rating()));
            true
        }
        Payload::ApplicationClosed(c)
            if !is_final(status) || status == ApplicationStatus::Approved =>
        {
            app.set_status(ApplicationStatus::Closed);
            app.status_reason = c.reason.clone();
            true
        }
        Payload::DeliverySucceeded(d) => {
            let p = app.deliveries.get_or_insert_with(Default::default);
            let mut changed = note_platform(
                p,
                PlatformReport {
                    platform_id: &d.platform_id,
                    delivery_id: &d.delivery_id,
                    state: PlatformDeliveryState::Delivered,
                    receipt: &d.receipt,
                    event_type: &d.source_event_type,
                    at: env.occurred_at,
                },
            );
            if !p.platforms.contains(&d.platform_id) {
                p.platforms.push(d.platform_id.clone());
                p.platforms.sort();
                p.succeeded = p.platforms.len() as u32;
                changed = true;
            }
            changed
        }
        Payload::DeliveryDeadLettered(d) => {
            let p = app.deliveries.get_or_insert_with(Default::default);
            p.dead_lettered += 1;
            note_platform(
                p,
                PlatformReport {
                    platform_id: &d.platform_id,
                    delivery_id: &d.delivery_id,
                    state: PlatformDeliveryState::DeadLettered,
                    receipt: "",
                    event_type: &d.source_event_type,
                    at: env.occurred_at,
                },
            );
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tongban_proto::events::{ApplicationApproved, TaskCreated};

    fn env(p: Payload) -> Envelope {
        Envelope {
            payload: Some(p),
            ..Default::default()
        }
    }

    #[test]
    fn status_follows_events_and_final_states_stick() {
        let mut app = Application {
            status: ApplicationStatus::Submitted as i32,
            ..Default::default()
        };
        assert!(apply_event(
            &mut app,
            &env(Payload::TaskCreated(TaskCreated::default()))
        ));
        assert_eq!(app.status(), ApplicationStatus::InReview);
        assert!(!apply_event(
            &mut app,
            &env(Payload::TaskCreated(TaskCreated::default()))
        ));
        let approved = ApplicationApproved {
            decision_number: "松环审〔2026〕1号".into(),
            ..Default::default()
        };
        assert!(apply_event(
            &mut app,
            &env(Payload::ApplicationApproved(approved))
        ));
        assert_eq!(app.status(), ApplicationStatus::Approved);
        assert!(!apply_event(
            &mut app,
            &env(Payload::ApplicationRejected(
                tongban_proto::events::ApplicationRejected::default()
            ))
        ));
        assert_eq!(app.status(), ApplicationStatus::Approved);
    }

    #[test]
    fn a_revocation_that_overtakes_its_approval_still_revokes() {
        let mut app = Application {
            status: ApplicationStatus::InReview as i32,
            ..Default::default()
        };
        let revoked = tongban_proto::events::ApplicationRevoked {
            reason: "pledge broken".into(),
            ..Default::default()
        };
        assert!(apply_event(
            &mut app,
            &env(Payload::ApplicationRevoked(revoked))
        ));
        assert_eq!(app.status(), ApplicationStatus::Revoked);
        let approved = ApplicationApproved {
            decision_number: "松环审〔2026〕2号".into(),
            on_pledge: true,
            ..Default::default()
        };
        assert!(apply_event(
            &mut app,
            &env(Payload::ApplicationApproved(approved.clone()))
        ));
        assert_eq!(app.status(), ApplicationStatus::Revoked);
        assert_eq!(app.decision_number, "松环审〔2026〕2号");
        assert_eq!(app.status_reason, "approval revoked: pledge broken");
        assert!(!apply_event(
            &mut app,
            &env(Payload::ApplicationApproved(approved))
        ));
    }

    #[test]
    fn delivery_progress_counts_each_platform_once() {
        let mut app = Application::default();
        let d = |p: &str| {
            env(Payload::DeliverySucceeded(
                tongban_proto::events::DeliverySucceeded {
                    platform_id: p.into(),
                    ..Default::default()
                },
            ))
        };
        assert!(apply_event(&mut app, &d("eia")));
        assert!(!apply_event(&mut app, &d("eia")));
        assert!(apply_event(&mut app, &d("national_investment")));
        assert_eq!(app.deliveries.as_ref().map(|p| p.succeeded), Some(2));
    }
}

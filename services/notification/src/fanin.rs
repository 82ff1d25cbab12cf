//! Who hears about what: the pure mapping from one event to the notifications it causes.
//!
//! | event | recipients |
//! | --- | --- |
//! | `application.submitted` (受理), `application.supplement_requested`, `application.approved`, `application.rejected`, `application.revoked`, `application.suspended`, `request.answered` | `applicant:<credit code>` |
//! | `task.created`, `task.due_soon` | `department:<dept>` (its clerks) |
//! | `task.overdue`, `task.escalated` | `supervisor:<dept>` |
//! | `task.due_soon` / `task.overdue` of kind `follow_up_material` | also the applicant (owed material) |
//! | `delivery.dead_lettered` | `role:integrator` |
//!
//! Events carry only the application id; the applicant's address, language and project name
//! come from the [`Facts`] kept from `application.submitted`. Without them (an application
//! submitted before this service ran) applicant notifications are skipped, staff ones are not.

use std::collections::HashMap;

use tongban_proto::events::{self, Envelope, envelope::Payload};

use crate::templates::{ZH_CN, normalize_locale};

/// What notification remembers about an application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub application_id: String,
    pub credit_code: String,
    pub contact_email: String,
    pub locale: String,
    pub matter_code: String,
    pub project_name: String,
}

impl Facts {
    /// The facts in an `application.submitted` event, if it is one.
    pub fn from_event(event: &Envelope) -> Option<Facts> {
        let Some(Payload::ApplicationSubmitted(s)) = &event.payload else {
            return None;
        };
        let app = s.application.clone().unwrap_or_default();
        let applicant = app.applicant.unwrap_or_default();
        let contact = applicant.contact.unwrap_or_default();
        let project_name = app
            .form
            .as_ref()
            .and_then(|f| f.fields.get("project_name"))
            .and_then(|v| match &v.kind {
                Some(prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let application_id = if app.application_id.is_empty() {
            event.application_id.clone()
        } else {
            app.application_id
        };
        Some(Facts {
            application_id,
            credit_code: applicant.credit_code.trim().to_ascii_uppercase(),
            contact_email: contact.email.trim().to_string(),
            locale: normalize_locale(&contact.locale).to_string(),
            matter_code: app.matter_code,
            project_name,
        })
    }
}

/// One notification to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// `applicant:<cc>`, `department:<dept>`, `supervisor:<dept>` or `role:integrator`.
    pub recipient: String,
    /// The event type that caused it.
    pub kind: String,
    /// Key into the templates.
    pub template: &'static str,
    pub locale: String,
    pub task_id: String,
    /// Reminders are de-duplicated per (recipient, kind, task) and e-mailed in working time only.
    pub reminder: bool,
    /// Where to e-mail it, for applicants with a contact address.
    pub email_to: Option<String>,
    pub vars: HashMap<&'static str, String>,
}

impl Draft {
    /// The de-duplication key of a reminder.
    pub fn dedup_key(&self) -> Option<String> {
        self.reminder
            .then(|| format!("{}|{}|{}", self.recipient, self.kind, self.task_id))
    }
}

/// The notifications `event` causes. `facts` are the application's, if known; `tz` is the
/// calendar's zone, for showing due times in local time.
pub fn drafts(event: &Envelope, facts: Option<&Facts>, tz: chrono_tz::Tz) -> Vec<Draft> {
    let Some(payload) = &event.payload else {
        return Vec::new();
    };
    let mut vars: HashMap<&'static str, String> = HashMap::new();
    vars.insert("application_id", event.application_id.clone());
    if let Some(f) = facts {
        vars.insert(
            "project_name",
            non_empty(&f.project_name, &f.application_id),
        );
        vars.insert("matter_code", f.matter_code.clone());
    } else {
        vars.insert("project_name", event.application_id.clone());
    }
    let kind = event.r#type.as_str();
    let mut out = Vec::new();
    let staff = |recipient: String, template: &'static str, task_id: &str, reminder: bool| Draft {
        recipient,
        kind: kind.to_string(),
        template,
        locale: ZH_CN.to_string(),
        task_id: task_id.to_string(),
        reminder,
        email_to: None,
        vars: HashMap::new(),
    };
    let applicant = |template: &'static str, task_id: &str, reminder: bool| -> Option<Draft> {
        let f = facts?;
        if f.credit_code.is_empty() {
            return None;
        }
        Some(Draft {
            recipient: format!("applicant:{}", f.credit_code),
            kind: kind.to_string(),
            template,
            locale: f.locale.clone(),
            task_id: task_id.to_string(),
            reminder,
            email_to: (!f.contact_email.is_empty()).then(|| f.contact_email.clone()),
            vars: HashMap::new(),
        })
    };
    match payload {
        Payload::ApplicationSubmitted(_) => {
            out.extend(applicant("application.submitted", "", false));
        }
        Payload::SupplementRequested(p) => {
            vars.insert("department", p.department.clone());
            vars.insert("comment", p.comment.clone());
            vars.insert("materials", p.requested_materials.join(", "));
            vars.insert("task_id", p.task_id.clone());
            out.extend(applicant(
                "application.supplement_requested",
                &p.task_id,
                false,
            ));
        }
        Payload::ApplicationApproved(p) => {
            vars.insert("decision_number", p.decision_number.clone());
            vars.insert("department", p.department.clone());
            out.extend(applicant("application.approved", "", false));
        }
        Payload::ApplicationRejected(p) => {
            vars.insert("reason", p.reason.clone());
            vars.insert("department", p.department.clone());
            out.extend(applicant("application.rejected", "", false));
        }
        Payload::ApplicationRevoked(p) => {
            vars.insert("reason", p.reason.clone());
            vars.insert("department", p.department.clone());
            out.extend(applicant("application.revoked", "", false));
        }
        Payload::ApplicationSuspended(p) => {
            vars.insert("material_kind", p.material_kind.clone());
            out.extend(applicant("application.suspended", &p.task_id, false));
        }
        Payload::ServiceRated(p) if p.poor => {
            vars.insert("department", p.department.clone());
            vars.insert("score", p.score.to_string());
            vars.insert("reasons", p.reasons.join(", "));
            vars.insert("reason_labels", p.reason_labels.join("、"));
            vars.insert("comment", p.comment.clone());
            out.push(staff(
                format!("supervisor:{}", p.department),
                "rating.poor",
                "",
                false,
            ));
        }
        Payload::RatingRectified(p) => {
            vars.insert("department", p.department.clone());
            vars.insert("rectification", p.rectification.clone());
            out.extend(applicant("rating.rectified", "", false));
        }
        Payload::RequestAnswered(p) => {
            vars.insert("department", p.department.clone());
            vars.insert("answer", p.answer.clone());
            out.extend(applicant("request.answered", "", false));
        }
        Payload::TaskCreated(p) => {
            task_vars(&mut vars, &p.task_id, &p.department, &p.title);
            vars.insert("due_time", due(p.due_time.as_ref(), tz));
            out.push(staff(
                format!("department:{}", p.department),
                "task.created",
                &p.task_id,
                false,
            ));
        }
        Payload::TaskDueSoon(p) => {
            task_vars(&mut vars, &p.task_id, &p.department, &p.title);
            vars.insert("due_time", due(p.due_time.as_ref(), tz));
            out.push(staff(
                format!("department:{}", p.department),
                "task.due_soon",
                &p.task_id,
                true,
            ));
            if p.kind() == events::TaskKind::FollowUpMaterial {
                out.extend(applicant("material.due_soon", &p.task_id, true));
            }
        }
        Payload::TaskOverdue(p) => {
            task_vars(&mut vars, &p.task_id, &p.department, &p.title);
            vars.insert("due_time", due(p.due_time.as_ref(), tz));
            out.push(staff(
                format!("supervisor:{}", p.department),
                "task.overdue",
                &p.task_id,
                true,
            ));
            if p.kind() == events::TaskKind::FollowUpMaterial {
                out.extend(applicant("material.overdue", &p.task_id, true));
            }
        }
        Payload::TaskEscalated(p) => {
            task_vars(&mut vars, &p.task_id, &p.department, &p.title);
            vars.insert("escalated_to", p.escalated_to.clone());
            let recipient = if p.escalated_to.starts_with("supervisor:") {
                p.escalated_to.clone()
            } else {
                format!("supervisor:{}", p.department)
            };
            out.push(staff(recipient, "task.escalated", &p.task_id, false));
        }
        Payload::DeliveryDeadLettered(p) => {
            vars.insert("platform_id", p.platform_id.clone());
            vars.insert("source_event_type", p.source_event_type.clone());
            vars.insert("last_error", p.last_error.clone());
            vars.insert("attempts", p.attempts.to_string());
            out.push(staff(
                "role:integrator".to_string(),
                "delivery.dead_lettered",
                "",
                false,
            ));
        }
        _ => {}
    }
    for d in &mut out {
        d.vars = vars.clone();
    }
    out
}

/// Whether `event` notifies the applicant when the application's facts are known: such an
/// event arriving before them is kept until `application.submitted` brings them.
pub fn concerns_applicant(event: &Envelope) -> bool {
    let known = Facts {
        credit_code: "known".into(),
        ..Facts::default()
    };
    drafts(event, Some(&known), chrono_tz::UTC)
        .iter()
        .any(|d| d.recipient.starts_with("applicant:"))
}

fn task_vars(vars: &mut HashMap<&'static str, String>, task_id: &str, dept: &str, title: &str) {
    vars.insert("task_id", task_id.to_string());
    vars.insert("department", dept.to_string());
    vars.insert("task_title", non_empty(title, task_id));
}

fn non_empty(s: &str, fallback: &str) -> String {
    if s.trim().is_empty() {
        fallback.to_string()
    } else {
        s.to_string()
    }
}

fn due(t: Option<&prost_types::Timestamp>, tz: chrono_tz::Tz) -> String {
    t.and_then(tongban_proto::time::from_ts)
        .map(|t| format_time(t, tz))
        .unwrap_or_else(|| "-".to_string())
}

/// Local wall-clock time, e.g. `2026-12-01 17:00`.
fn format_time(t: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            application_id: "app-1".into(),
            credit_code: "91350100M000100Y43".into(),
            contact_email: "a@example.com".into(),
            locale: "en".into(),
            matter_code: "m".into(),
            project_name: "P".into(),
        }
    }

    fn env(payload: Payload) -> Envelope {
        tongban_outbox::new_envelope("test", "app-1", payload)
    }

    #[test]
    fn owed_material_reminders_reach_the_applicant_and_staff() {
        let e = env(Payload::TaskOverdue(events::TaskOverdue {
            task_id: "t1".into(),
            department: "eco_env".into(),
            kind: events::TaskKind::FollowUpMaterial as i32,
            ..Default::default()
        }));
        let d = drafts(&e, Some(&facts()), chrono_tz::Asia::Shanghai);
        let r: Vec<_> = d.iter().map(|d| d.recipient.as_str()).collect();
        assert_eq!(r, ["supervisor:eco_env", "applicant:91350100M000100Y43"]);
        assert!(d.iter().all(|d| d.reminder));
        assert_eq!(d[1].email_to.as_deref(), Some("a@example.com"));
        assert_eq!(d[1].template, "material.overdue");
        assert_eq!(
            d[0].dedup_key().as_deref(),
            Some("supervisor:eco_env|task.overdue|t1")
        );
    }

    #[test]
    fn review_reminders_do_not_bother_the_applicant() {
        let e = env(Payload::TaskDueSoon(events::TaskDueSoon {
            task_id: "t1".into(),
            department: "eco_env".into(),
            kind: events::TaskKind::Review as i32,
            ..Default::default()
        }));
        let d = drafts(&e, Some(&facts()), chrono_tz::Asia::Shanghai);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].recipient, "department:eco_env");
        assert_eq!(d[0].locale, ZH_CN);
    }

    #[test]
    fn unknown_application_skips_only_the_applicant() {
        let e = env(Payload::ApplicationApproved(Default::default()));
        assert!(drafts(&e, None, chrono_tz::Asia::Shanghai).is_empty());
        let e = env(Payload::DeliveryDeadLettered(Default::default()));
        assert_eq!(
            drafts(&e, None, chrono_tz::Asia::Shanghai)[0].recipient,
            "role:integrator"
        );
    }

    #[test]
    fn only_applicant_events_wait_for_the_facts() {
        assert!(concerns_applicant(&env(Payload::ApplicationApproved(
            Default::default()
        ))));
        assert!(!concerns_applicant(&env(Payload::DeliveryDeadLettered(
            Default::default()
        ))));
        assert!(!concerns_applicant(&env(Payload::TaskCreated(
            Default::default()
        ))));
    }
}

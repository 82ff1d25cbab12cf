//! The canonical document every platform mapping reads (see `tongban_platform`'s crate docs):
//! `{event, application, approval?, withdrawal?, supplement?}`. Pure functions, no I/O.

use serde_json::{Value, json};
use tongban_proto::{
    common::{CreditClass, Material},
    events::{ApplicationSnapshot, Envelope, envelope::Payload},
    structs::struct_to_json,
    time::from_ts,
};

fn rfc3339(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(from_ts)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
        .unwrap_or(Value::Null)
}

fn material(m: &Material) -> Value {
    json!({
        "kind": m.kind, "name": m.name, "sha256": m.sha256,
        "size_bytes": m.size_bytes, "uri": m.uri,
    })
}

fn credit_class(c: CreditClass) -> Value {
    match c {
        CreditClass::A => json!("A"),
        CreditClass::B => json!("B"),
        CreditClass::C => json!("C"),
        CreditClass::D => json!("D"),
        CreditClass::Unspecified => Value::Null,
    }
}

/// The `application` section, from the snapshot in `application.submitted`.
pub fn application_section(s: &ApplicationSnapshot) -> Value {
    let applicant = s.applicant.clone().unwrap_or_default();
    json!({
        "id": s.application_id,
        "matter_code": s.matter_code,
        "submit_time": rfc3339(s.submit_time.as_ref()),
        "applicant": {
            "credit_code": applicant.credit_code,
            "name": applicant.name,
            "region_code": applicant.region_code,
            "credit_class": credit_class(applicant.credit_class()),
        },
        "form": Value::Object(struct_to_json(s.form.as_ref())),
        "materials": s.materials.iter().map(material).collect::<Vec<_>>(),
    })
}

/// Folds what an event changes into the stored `application` section (supplements add
/// materials). Returns whether it changed.
pub fn apply_to_application(application: &mut Value, event: &Envelope) -> bool {
    if let Some(Payload::ApplicationSupplemented(s)) = &event.payload
        && !s.materials.is_empty()
        && let Some(list) = application
            .get_mut("materials")
            .and_then(Value::as_array_mut)
    {
        list.extend(s.materials.iter().map(material));
        return true;
    }
    false
}

/// The full document for `event` about `application` (the stored section).
pub fn document(event: &Envelope, application: &Value) -> Value {
    let mut doc = json!({
        "event": {
            "id": event.event_id,
            "type": event.r#type,
            "occurred_at": rfc3339(event.occurred_at.as_ref()),
        },
        "application": application,
    });
    let approval = match &event.payload {
        Some(Payload::ApplicationApproved(a)) => Some(json!({
            "decision_number": a.decision_number,
            "decide_time": rfc3339(a.decide_time.as_ref()),
            "department": a.department,
            "on_pledge": a.on_pledge,
        })),
        Some(Payload::ApplicationRejected(r)) => Some(json!({
            "decide_time": rfc3339(r.decide_time.as_ref()),
            "department": r.department,
            "reason": r.reason,
        })),
        // 告知承诺制: the approval issued on pledge is withdrawn; `decide_time` is the revocation.
        Some(Payload::ApplicationRevoked(r)) => Some(json!({
            "decide_time": rfc3339(r.revoke_time.as_ref()),
            "department": r.department,
            "reason": r.reason,
            "revoked": true,
        })),
        _ => None,
    };
    // The lifecycle events a platform may need besides decisions, each in its own section.
    let (name, section) = match &event.payload {
        Some(Payload::ApplicationWithdrawn(w)) => (
            "withdrawal",
            Some(json!({
                "reason": w.reason,
                "withdraw_time": rfc3339(event.occurred_at.as_ref()),
            })),
        ),
        Some(Payload::ApplicationSupplemented(s)) => (
            "supplement",
            Some(json!({
                "materials": s.materials.iter().map(material).collect::<Vec<_>>(),
                "note": s.note,
                "fulfilled_kinds": s.fulfilled_kinds,
                "supplement_time": rfc3339(event.occurred_at.as_ref()),
            })),
        ),
        _ => ("", None),
    };
    if let Some(obj) = doc.as_object_mut() {
        if let Some(a) = approval {
            obj.insert("approval".into(), a);
        }
        if let Some(s) = section {
            obj.insert(name.into(), s);
        }
    }
    doc
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost_types::value::Kind;

    use super::*;
    use tongban_proto::events::{ApplicationApproved, ApplicationRejected};

    fn snapshot() -> ApplicationSnapshot {
        let mut form = prost_types::Struct::default();
        form.fields.insert(
            "total_investment_wan".into(),
            prost_types::Value {
                kind: Some(Kind::NumberValue(12800.0)),
            },
        );
        ApplicationSnapshot {
            application_id: "a1".into(),
            matter_code: "env.eia.report_form".into(),
            applicant: Some(tongban_proto::common::Applicant {
                credit_code: "91350100M000100Y43".into(),
                credit_class: CreditClass::B as i32,
                ..Default::default()
            }),
            form: Some(form),
            submit_time: Some(prost_types::Timestamp {
                seconds: 1_768_408_200,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn document_has_the_documented_shape() {
        let app = application_section(&snapshot());
        assert_eq!(app["form"]["total_investment_wan"], json!(12800));
        assert_eq!(app["applicant"]["credit_class"], json!("B"));
        assert_eq!(app["submit_time"], json!("2026-01-14T16:30:00Z"));
        let approved = Envelope {
            event_id: "e1".into(),
            r#type: "application.approved".into(),
            payload: Some(Payload::ApplicationApproved(ApplicationApproved {
                decision_number: "松环审〔2026〕12号".into(),
                department: "eco_env".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let doc = document(&approved, &app);
        assert_eq!(doc["event"]["type"], json!("application.approved"));
        assert_eq!(
            doc["approval"]["decision_number"],
            json!("松环审〔2026〕12号")
        );
        let rejected = Envelope {
            r#type: "application.rejected".into(),
            payload: Some(Payload::ApplicationRejected(ApplicationRejected {
                reason: "选址不符".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let doc = document(&rejected, &app);
        assert_eq!(doc["approval"]["reason"], json!("选址不符"));
        assert!(doc["approval"].get("decision_number").is_none());
        let submitted = Envelope {
            r#type: "application.submitted".into(),
            ..Default::default()
        };
        assert!(document(&submitted, &app).get("approval").is_none());
    }
}

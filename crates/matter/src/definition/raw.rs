//! The file format as written: what serde deserializes a definition's TOML into, before any
//! rule is checked. Unknown keys are rejected here, with their line and column.

use serde::Deserialize;
use toml::Spanned;

use super::model::MatterKind;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatter {
    pub(super) code: String,
    pub(super) version: u32,
    pub(super) name: String,
    pub(super) name_en: String,
    pub(super) description: Option<String>,
    pub(super) kind: MatterKind,
    pub(super) lead_department: Spanned<String>,
    pub(super) pledge: Option<Spanned<RawPledge>>,
    #[serde(default)]
    pub(super) form: RawForm,
    #[serde(default)]
    pub(super) materials: Vec<Spanned<RawMaterial>>,
    #[serde(default)]
    pub(super) stages: Vec<Spanned<RawStage>>,
    pub(super) request: Option<Spanned<RawRequest>>,
    pub(super) decision_number_prefix: Option<Spanned<String>>,
    pub(super) escalate_after_hours: Option<u32>,
    pub(super) site_region_field: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) reason_required: Option<RawReasonRequired>,
}

/// `[reason_required]`: which decisions must carry a reason.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReasonRequired {
    pub(super) approve: Option<bool>,
    pub(super) reject: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPledge {
    pub(super) allowed_credit_classes: Vec<String>,
    pub(super) verify_within_working_days: u32,
    pub(super) verify_department: String,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForm {
    #[serde(default)]
    pub(super) fields: Vec<Spanned<RawField>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawField {
    pub(super) name: String,
    pub(super) label: String,
    pub(super) label_en: Option<String>,
    pub(super) description: Option<String>,
    #[serde(rename = "type")]
    pub(super) ty: String,
    #[serde(default)]
    pub(super) required: bool,
    pub(super) min_length: Option<u32>,
    pub(super) max_length: Option<u32>,
    pub(super) pattern: Option<String>,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
    pub(super) allowed: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMaterial {
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) name_en: Option<String>,
    #[serde(default)]
    pub(super) required: bool,
    #[serde(default)]
    pub(super) may_owe: bool,
    pub(super) max_owed_days: Option<u32>,
    #[serde(default)]
    pub(super) suspend_when_overdue: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStage {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) name_en: Option<String>,
    pub(super) when: Option<String>,
    #[serde(default)]
    pub(super) tasks: Vec<Spanned<RawTask>>,
    #[serde(default)]
    pub(super) next: Vec<RawNext>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTask {
    pub(super) department: Option<String>,
    pub(super) department_from: Option<String>,
    pub(super) title: Option<String>,
    pub(super) deadline_hours: u32,
    pub(super) when: Option<String>,
    #[serde(default)]
    pub(super) route_by_region: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNext {
    pub(super) when: Option<String>,
    pub(super) goto: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequest {
    #[serde(default)]
    pub(super) reopen_on: Vec<String>,
    pub(super) answer_deadline_hours: u32,
    pub(super) supervising_department: Option<String>,
    pub(super) reopen_stage: Option<String>,
    pub(super) close_unrated_after_working_days: Option<u32>,
    pub(super) assign_stage: Option<String>,
}

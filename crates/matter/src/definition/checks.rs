//! Validation: turns the [`raw`](super::raw) file format into the [`model`](super::model),
//! collecting every problem of a file (with its line and place) before failing, so an operator
//! fixes a definition in one round. The workflow's own rules (stages, tasks, the jump graph,
//! the request policy) are in [`workflow`].

mod workflow;

use std::collections::BTreeSet;

use toml::Spanned;

use self::workflow::{check_request, check_stages};

/// The longest deadline or escalation a definition may set, in working hours: about a year of
/// 8-hour days. Deadlines feed calendar arithmetic, so they are bounded here, where they are
/// declared.
pub(super) const MAX_WORKING_HOURS: u32 = 2_000;
/// The longest period in working days (owed materials, pledge verification): a year.
pub(super) const MAX_WORKING_DAYS: u32 = 365;

use super::model::{
    DEFAULT_ESCALATE_AFTER_HOURS, MaterialRequirement, MatterDefinition, MatterKind, PledgePolicy,
    ReasonRequired,
};
use super::raw::{RawForm, RawMaterial, RawMatter, RawPledge};
use crate::condition::{Condition, CreditClass};
use crate::department::Departments;
use crate::error::{DefinitionError, Problem};
use crate::form::{FieldDef, FieldType, FormSchema, Pattern};
use crate::util::{is_identifier, line_of};

/// Collects problems while a definition is checked.
pub(super) struct Checker<'a> {
    source: &'a str,
    departments: &'a Departments,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line<T>(&self, spanned: &Spanned<T>) -> Option<usize> {
        Some(line_of(self.source, spanned.span().start))
    }

    fn problem(&mut self, line: Option<usize>, place: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            place: place.to_owned(),
            message: message.into(),
        });
    }

    fn department(&mut self, line: Option<usize>, place: &str, key: &str, code: &str) {
        if !self.departments.contains(code) {
            self.problem(
                line,
                place,
                format!("{key} `{code}` is not a known department"),
            );
        }
    }

    fn condition(
        &mut self,
        line: Option<usize>,
        place: &str,
        text: Option<&str>,
        form: &FormSchema,
    ) -> Option<Condition> {
        let text = text?;
        match Condition::parse(text, form) {
            Ok(c) => Some(c),
            Err(e) => {
                self.problem(line, place, format!("condition `{text}`: {e}"));
                None
            }
        }
    }
}

fn matter_code_ok(code: &str) -> bool {
    !code.is_empty() && code.split('.').all(is_identifier)
}

impl MatterDefinition {
    /// Parses and validates a definition; `origin` (a file name) prefixes every error.
    pub fn parse(
        source: &str,
        origin: &str,
        departments: &Departments,
    ) -> Result<Self, DefinitionError> {
        let raw: RawMatter = toml::from_str(source).map_err(|e| DefinitionError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let mut ck = Checker {
            source,
            departments,
            problems: Vec::new(),
        };

        if !matter_code_ok(&raw.code) {
            ck.problem(
                None,
                "code",
                format!(
                    "`{}` must be dot-separated lower-case words, e.g. env.eia.report_form",
                    raw.code
                ),
            );
        }
        if raw.version == 0 {
            ck.problem(None, "version", "must be 1 or more");
        }
        for (key, value) in [("name", &raw.name), ("name_en", &raw.name_en)] {
            if value.trim().is_empty() {
                ck.problem(None, key, "must not be empty");
            }
        }
        let line = ck.line(&raw.lead_department);
        ck.department(
            line,
            "matter",
            "lead_department",
            raw.lead_department.get_ref(),
        );

        if let Some(prefix) = &raw.decision_number_prefix
            && prefix.get_ref().trim().is_empty()
        {
            let line = ck.line(prefix);
            ck.problem(line, "decision_number_prefix", "must not be empty");
        }

        let form = check_form(&mut ck, raw.form);
        let site_region_field = raw
            .site_region_field
            .map(|f| check_site_region_field(&mut ck, f, &form));
        let materials = check_materials(&mut ck, raw.materials);
        let pledge = raw.pledge.map(|p| check_pledge(&mut ck, raw.kind, p));
        let stages = check_stages(&mut ck, raw.stages, &form, pledge.is_some());
        let request = check_request(&mut ck, raw.kind, raw.request, &stages);

        if !ck.problems.is_empty() {
            return Err(DefinitionError::Invalid {
                origin: origin.to_owned(),
                problems: ck.problems,
            });
        }
        Ok(Self {
            code: raw.code,
            version: raw.version,
            name: raw.name,
            name_en: raw.name_en,
            description: raw.description,
            kind: raw.kind,
            lead_department: raw.lead_department.into_inner(),
            pledge,
            form,
            materials,
            stages,
            request,
            decision_number_prefix: raw
                .decision_number_prefix
                .map(|p| p.into_inner().trim().to_owned()),
            escalate_after_hours: raw
                .escalate_after_hours
                .unwrap_or(DEFAULT_ESCALATE_AFTER_HOURS),
            reason_required: raw
                .reason_required
                .map(|r| {
                    let d = ReasonRequired::default();
                    ReasonRequired {
                        approve: r.approve.unwrap_or(d.approve),
                        reject: r.reject.unwrap_or(d.reject),
                    }
                })
                .unwrap_or_default(),
            site_region_field,
            source: source.to_owned(),
        })
    }
}

fn check_form(ck: &mut Checker<'_>, raw: RawForm) -> FormSchema {
    let mut fields = Vec::new();
    let mut names = BTreeSet::new();
    for spanned in raw.fields {
        let line = ck.line(&spanned);
        let f = spanned.into_inner();
        let place = format!("form field `{}`", f.name);
        if !is_identifier(&f.name) {
            ck.problem(
                line,
                &place,
                "name must be lower case letters, digits and `_`, starting with a letter",
            );
        }
        if !names.insert(f.name.clone()) {
            ck.problem(line, &place, "is declared twice");
        }
        if f.label.trim().is_empty() {
            ck.problem(line, &place, "label must not be empty");
        }
        // Which constraint keys were given, to reject those the type does not use.
        let given = [
            ("min_length", f.min_length.is_some()),
            ("max_length", f.max_length.is_some()),
            ("pattern", f.pattern.is_some()),
            ("min", f.min.is_some()),
            ("max", f.max.is_some()),
            ("allowed", f.allowed.is_some()),
        ];
        let (ty, applicable): (Option<FieldType>, &[&str]) = match f.ty.as_str() {
            "string" => {
                let pattern = match f.pattern.as_deref().map(Pattern::new) {
                    Some(Err(e)) => {
                        ck.problem(line, &place, format!("pattern is not a valid regex: {e}"));
                        None
                    }
                    Some(Ok(p)) => Some(p),
                    None => None,
                };
                if let (Some(min), Some(max)) = (f.min_length, f.max_length)
                    && min > max
                {
                    ck.problem(line, &place, "min_length is greater than max_length");
                }
                (
                    Some(FieldType::String {
                        min_length: f.min_length,
                        max_length: f.max_length,
                        pattern,
                    }),
                    &["min_length", "max_length", "pattern"],
                )
            }
            "integer" | "number" => {
                let integer = f.ty == "integer";
                if let (Some(min), Some(max)) = (f.min, f.max)
                    && min > max
                {
                    ck.problem(line, &place, "min is greater than max");
                }
                for (key, bound) in [("min", f.min), ("max", f.max)] {
                    if let Some(b) = bound
                        && (!b.is_finite() || (integer && b.fract() != 0.0))
                    {
                        ck.problem(line, &place, format!("{key} {b} does not fit the type"));
                    }
                }
                let ty = if integer {
                    FieldType::Integer {
                        min: f.min,
                        max: f.max,
                    }
                } else {
                    FieldType::Number {
                        min: f.min,
                        max: f.max,
                    }
                };
                (Some(ty), &["min", "max"])
            }
            "boolean" => (Some(FieldType::Boolean), &[]),
            "date" => (Some(FieldType::Date), &[]),
            "enum" => {
                let allowed = f.allowed.clone().unwrap_or_default();
                if allowed.is_empty() {
                    ck.problem(line, &place, "an enum needs a non-empty `allowed` list");
                }
                let mut seen = BTreeSet::new();
                for value in &allowed {
                    if value.is_empty() || !seen.insert(value) {
                        ck.problem(
                            line,
                            &place,
                            format!("allowed value `{value}` is empty or repeated"),
                        );
                    }
                }
                (Some(FieldType::Enum { allowed }), &["allowed"])
            }
            other => {
                ck.problem(
                    line,
                    &place,
                    format!(
                        "unknown type `{other}`; expected string, integer, number, boolean, \
                         date or enum"
                    ),
                );
                (None, &[])
            }
        };
        let Some(ty) = ty else { continue };
        for (key, present) in given {
            if present && !applicable.contains(&key) {
                ck.problem(
                    line,
                    &place,
                    format!("`{key}` does not apply to a {} field", ty.name()),
                );
            }
        }
        fields.push(FieldDef {
            name: f.name,
            label: f.label,
            label_en: f.label_en,
            description: f.description,
            required: f.required,
            ty,
        });
    }
    FormSchema { fields }
}

/// `site_region_field`: a declared, required text field (string or enum), since every
/// application must say where its project is for routing to follow it.
fn check_site_region_field(
    ck: &mut Checker<'_>,
    field: Spanned<String>,
    form: &FormSchema,
) -> String {
    let line = ck.line(&field);
    let name = field.into_inner();
    let place = "site_region_field";
    let name = name.strip_prefix("form.").unwrap_or(&name).to_owned();
    match form.field(&name) {
        None => ck.problem(
            line,
            place,
            format!("form field `{name}` is not declared in the form"),
        ),
        Some(def) => {
            if !matches!(def.ty, FieldType::String { .. } | FieldType::Enum { .. }) {
                ck.problem(
                    line,
                    place,
                    format!(
                        "form field `{name}` has type {}; it must be a string (or enum) field \
                         holding a region code",
                        def.ty.name()
                    ),
                );
            }
            if !def.required {
                ck.problem(
                    line,
                    place,
                    format!("form field `{name}` must be required = true"),
                );
            }
        }
    }
    name
}

fn check_materials(
    ck: &mut Checker<'_>,
    raw: Vec<Spanned<RawMaterial>>,
) -> Vec<MaterialRequirement> {
    let mut kinds = BTreeSet::new();
    let mut out = Vec::new();
    for spanned in raw {
        let line = ck.line(&spanned);
        let m = spanned.into_inner();
        let place = format!("material `{}`", m.kind);
        if !is_identifier(&m.kind) {
            ck.problem(
                line,
                &place,
                "kind must be lower case letters, digits and `_`, starting with a letter",
            );
        }
        if !kinds.insert(m.kind.clone()) {
            ck.problem(line, &place, "is listed twice");
        }
        if m.name.trim().is_empty() {
            ck.problem(line, &place, "name must not be empty");
        }
        if m.may_owe && !m.required {
            ck.problem(line, &place, "may_owe applies only to required materials");
        }
        match (m.may_owe, m.max_owed_days) {
            (true, None | Some(0)) => ck.problem(
                line,
                &place,
                "may_owe needs max_owed_days (working days, 1 or more)",
            ),
            (false, Some(_)) => ck.problem(line, &place, "max_owed_days needs may_owe = true"),
            (true, Some(d)) if d > MAX_WORKING_DAYS => ck.problem(
                line,
                &place,
                format!("max_owed_days must be at most {MAX_WORKING_DAYS}"),
            ),
            _ => {}
        }
        if m.suspend_when_overdue && !m.may_owe {
            ck.problem(line, &place, "suspend_when_overdue needs may_owe = true");
        }
        out.push(MaterialRequirement {
            kind: m.kind,
            name: m.name,
            name_en: m.name_en,
            required: m.required,
            may_owe: m.may_owe,
            max_owed_days: m.max_owed_days,
            suspend_when_overdue: m.suspend_when_overdue,
        });
    }
    out
}

fn check_pledge(ck: &mut Checker<'_>, kind: MatterKind, raw: Spanned<RawPledge>) -> PledgePolicy {
    let line = ck.line(&raw);
    let p = raw.into_inner();
    let place = "[pledge]";
    if kind != MatterKind::Application {
        ck.problem(line, place, "only an application matter can allow pledges");
    }
    let mut classes = Vec::new();
    for c in &p.allowed_credit_classes {
        match c.parse::<CreditClass>() {
            Ok(class) if !classes.contains(&class) => classes.push(class),
            Ok(class) => ck.problem(line, place, format!("credit class {class} is listed twice")),
            Err(e) => ck.problem(line, place, e.to_string()),
        }
    }
    if p.allowed_credit_classes.is_empty() {
        ck.problem(line, place, "allowed_credit_classes must not be empty");
    }
    if p.verify_within_working_days == 0 || p.verify_within_working_days > MAX_WORKING_DAYS {
        ck.problem(
            line,
            place,
            format!("verify_within_working_days must be 1 to {MAX_WORKING_DAYS}"),
        );
    }
    ck.department(line, place, "verify_department", &p.verify_department);
    PledgePolicy {
        allowed_credit_classes: classes,
        verify_within_working_days: p.verify_within_working_days,
        verify_department: p.verify_department,
    }
}

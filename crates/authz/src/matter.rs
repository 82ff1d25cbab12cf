//! The departments an application's workflow can involve, read from its matter definition, for
//! services that do not run the workflow (intake, dispatch).
//!
//! Every task of every stage counts, conditional or not: a stage the conditions skip still lets
//! its department read the application. That errs toward the departments the matter names,
//! never toward staff outside it.

use tongban_matter::{Departments, MatterDefinition, TaskDepartment};

use crate::Scope;

/// The scope of one application of `def`: its enterprise and matter, every department (and the
/// township office routing picks) the definition's stages name, and the lead department.
/// Routing follows the project site (the matter's `site_region_field`) when the matter declares
/// one, else the applicant's `region_code`, as approval's does. `form_value` reads a form
/// field, for departments taken from the form and the site region.
pub fn application_scope(
    def: &MatterDefinition,
    departments: &Departments,
    credit_code: &str,
    region_code: &str,
    form_value: impl Fn(&str) -> Option<String>,
) -> Scope {
    let site = def.site_region_field.as_deref().and_then(&form_value);
    let region_code = site.as_deref().unwrap_or(region_code);
    let mut out: Vec<String> = Vec::new();
    let mut add = |d: &str| {
        if !d.is_empty() && !out.iter().any(|x| x == d) {
            out.push(d.to_string());
        }
    };
    add(&def.lead_department);
    for task in def.stages.iter().flat_map(|s| &s.tasks) {
        let department = match &task.department {
            TaskDepartment::Fixed(d) => Some(d.clone()),
            TaskDepartment::FromForm(field) => form_value(field),
        };
        let Some(department) = department else {
            continue;
        };
        add(&department);
        if task.route_by_region
            && let Some(office) = departments.route(&department, region_code).office
        {
            add(&office);
        }
    }
    Scope::application(credit_code, &def.code, out).with_lead(Some(def.lead_department.clone()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;

    use super::*;

    fn shipped() -> (Departments, MatterDefinition) {
        let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let departments = Departments::load(deploy.join("departments.toml")).unwrap();
        let eia = MatterDefinition::load(
            deploy.join("matters/env.eia.report_form.v1.toml"),
            &departments,
        )
        .unwrap();
        (departments, eia)
    }

    #[test]
    fn the_township_office_of_the_project_site_is_in_scope() {
        let (departments, eia) = shipped();
        let scope = |site: Option<&str>, applicant: &str| {
            let site = site.map(str::to_string);
            application_scope(&eia, &departments, "c", applicant, |f| {
                (f == "site_region").then(|| site.clone()).flatten()
            })
            .departments
        };
        let built_in_zhengdun = scope(Some("350724101"), "350724100");
        assert!(built_in_zhengdun.contains(&"eco_env.zhengdun".to_string()));
        assert!(!built_in_zhengdun.contains(&"eco_env.songyuan".to_string()));
        // No site given: the applicant's region, as approval routes then.
        let no_site = scope(None, "350724100");
        assert!(no_site.contains(&"eco_env.songyuan".to_string()));
        assert!(!no_site.contains(&"eco_env.zhengdun".to_string()));
    }
}

//! Matter definitions: one TOML file per matter code and version, parsed into a
//! [`MatterDefinition`] that has been checked as a whole.
//!
//! # Workflow model
//! Stages run in file order; the tasks of a stage run in parallel. A stage or task with a
//! `when` condition applies only when it holds; a stage none of whose tasks apply is skipped.
//! After a stage that ran, its `next` rules are tried in order and the first that holds
//! (a rule without `when` always holds) jumps to its `goto` stage; when none holds, or the
//! stage was skipped, the flow falls through to the following stage. The flow ends after the
//! last stage.
//!
//! Loading rejects a workflow whose jumps can loop (a cycle in the graph of fall-throughs and
//! jumps) or that has a stage no path from the first stage reaches, so every instance
//! finishes and every stage is meant.
//!
//! # Layout
//! - [`model`]: the validated types the services use, and what they compute (the plan).
//! - `raw`: the file format as written, as serde deserializes it.
//! - `checks`: validation turning `raw` into `model`, collecting every problem with its file,
//!   line and place.

mod checks;
mod model;
mod raw;

use std::collections::BTreeMap;
use std::path::Path;

use crate::department::Departments;
use crate::error::DefinitionError;

pub use model::{
    DEFAULT_CLOSE_UNRATED_AFTER_WORKING_DAYS, DEFAULT_ESCALATE_AFTER_HOURS, MaterialRequirement,
    MatterDefinition, MatterKind, NextRule, PlannedStage, PlannedTask, PledgePolicy, Rating,
    ReasonRequired, RequestPolicy, StageDef, TaskDef, TaskDepartment,
};

/// Loads every `*.toml` file of `dir`, in file-name order. Two files with the same code and
/// version are an error.
pub fn load_dir(
    dir: impl AsRef<Path>,
    departments: &Departments,
) -> Result<Vec<MatterDefinition>, DefinitionError> {
    let dir = dir.as_ref();
    let io = |origin: &Path| {
        let origin = origin.display().to_string();
        move |source| DefinitionError::Io { origin, source }
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut seen: BTreeMap<(String, u32), String> = BTreeMap::new();
    let mut out = Vec::new();
    for path in paths {
        let def = MatterDefinition::load(&path, departments)?;
        let origin = path.display().to_string();
        let key = (def.code.clone(), def.version);
        if let Some(first) = seen.get(&key) {
            return Err(DefinitionError::Duplicate {
                origin,
                code: def.code,
                version: def.version,
                first: first.clone(),
            });
        }
        seen.insert(key, origin);
        out.push(def);
    }
    Ok(out)
}

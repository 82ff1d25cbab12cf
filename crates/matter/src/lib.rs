//! Matter (事项) definitions: what an application type asks for and how it is approved.
//!
//! A *matter* such as `env.eia.report_form` (建设项目环境影响报告表审批) is described by one
//! declarative, versioned TOML file under `deploy/matters/` (see its README for the format).
//! This crate is that format: it parses and validates definition files and the departments
//! file (and the region table), validates application forms, evaluates conditions and plans the stages and tasks an
//! application goes through. It does no I/O beyond reading files, except through the
//! [`DefinitionStore`] a service hands its [`Registry`].
//!
//! # Layout
//! * [`Departments`] (`deploy/departments.toml`): departments, their township offices, and
//!   routing by region code: the project site's ([`MatterDefinition::site_region_field`]) or
//!   else the applicant's.
//! * [`Regions`] (`deploy/regions.toml`): the region table the site region and every office's
//!   `region_prefix` are checked against ([`load_departments_and_regions`]).
//! * [`MatterDefinition`]: identity, [`FormSchema`], [`MaterialRequirement`]s,
//!   [`PledgePolicy`] (告知承诺制), the workflow ([`StageDef`]s of parallel [`TaskDef`]s) and,
//!   for enterprise requests, a [`RequestPolicy`]. [`load_dir`] loads a directory of them.
//! * [`Condition`]: the small `when` language (`form.uses_water_intake && credit_class == 'D'`),
//!   parsed and type-checked at load time, evaluated against an [`EvalContext`].
//! * [`Registry`]: every version of every matter a service knows, over the service's own
//!   table ([`DefinitionStore`]), kept current on every replica.
//!
//! # Who uses what
//! Intake validates an application with [`FormSchema::validate`] and the materials list;
//! approval starts an instance from [`MatterDefinition::plan`], which evaluates every
//! condition once, against the facts known at submission, and returns the stages and routed
//! tasks in order. A running instance keeps the definition version (and
//! [`MatterDefinition::content_hash`]) it started with.
//!
//! Loading is all-or-nothing and reports every problem of a file at once, each naming the
//! place (stage, task, field, material) and line; see [`DefinitionError`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod condition;
mod definition;
mod department;
mod error;
mod form;
mod region;
mod registry;
mod util;

pub use condition::{Condition, ConditionError, CreditClass, EvalContext, ParseCreditClassError};
pub use definition::{
    DEFAULT_CLOSE_UNRATED_AFTER_WORKING_DAYS, DEFAULT_ESCALATE_AFTER_HOURS, MaterialRequirement,
    MatterDefinition, MatterKind, NextRule, PlannedStage, PlannedTask, PledgePolicy, Rating,
    ReasonRequired, RequestPolicy, StageDef, TaskDef, TaskDepartment, load_dir,
};
pub use department::{Department, Departments, Office, Routed};
pub use error::{DefinitionError, EvalError, Problem};
pub use form::{FieldDef, FieldType, FieldViolation, FormSchema, Pattern};
pub use region::{Region, RegionKind, Regions, load_departments_and_regions};
pub use registry::{DEFAULT_REFRESH_INTERVAL, DefinitionStore, Registry, RegistryError};

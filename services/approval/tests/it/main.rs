//! Approval's integration tests: one test binary, each file a module, so the suite is linked
//! once. `common` is the shared harness; every test makes its own database and bus names.

mod audit_acts;
mod authz_matrix;
mod common;
mod consistency;
mod dead_letters;
mod definitions;
mod definitions_registry;
mod enterprise_requests;
mod ledger;
mod order;
mod ratings;
mod task_api;
mod timers;
mod workflow_paths;

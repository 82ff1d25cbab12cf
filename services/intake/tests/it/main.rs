//! Intake's integration tests: one test binary, each file a module, so the suite is linked
//! once. `common` is the shared harness; every test makes its own database and bus names.

mod authz_matrix;
mod bounds;
mod common;
mod credit;
mod intake_rpc;
mod matters_registry;
mod order;
mod site_region;
mod transport;
mod watch;

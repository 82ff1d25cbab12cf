//! Intake's integration tests: one test binary, each file a module, so the suite is linked
//! once. `common` is the shared harness; every test makes its own database and bus names.

mod bounds;
mod common;
mod intake_rpc;
mod matters_registry;
mod transport;

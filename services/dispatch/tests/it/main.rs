//! Dispatch's integration tests: one test binary, each file a module, so the suite is linked
//! once. `common` is the shared harness; every test makes its own database and bus names.

mod authz_matrix;
mod codes;
mod common;
mod contract;
mod delivery;
mod fifth_platform;
mod order;
mod parked;
mod recovery;

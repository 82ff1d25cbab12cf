//! Downstream government platforms, declared in configuration.
//!
//! Tongban's dispatch service delivers application events to platforms such as the national
//! investment-project approval platform or the provincial government-services platform. Each is
//! one TOML file (`deploy/platforms/<id>.toml`): endpoint, credentials, the event types it wants,
//! delivery policies, and a field mapping from the **canonical document** to the platform's own
//! payload. Adding a platform is a config change, not a code change.
//!
//! # Layout
//! * [`config`]: [`PlatformConfig`], [`load_dir`], environment overrides, start-up validation
//!   ([`ConfigError`] names file and field).
//! * [`mapping`]: the mapping engine ([`Mapping::apply`]); delivery-time failures are
//!   [`MappingError`]s naming platform, field and source path. [`check_code_tables`] finds,
//!   ahead of time, the form values and matter codes a code table cannot translate
//!   ([`CodeGap`]).
//! * [`auth`]: bearer and HMAC schemes, for both the sender and the receiver (simulator).
//! * [`policy`]: retry backoff and circuit-breaker numbers; the pipeline owns the clocks.
//! * [`events`]: the event types a platform may subscribe to.
//!
//! # The canonical document
//! Dispatch builds one JSON document per event; pointers in mappings address it:
//! ```json
//! { "event": { "id": "<uuidv7>", "type": "application.approved", "occurred_at": "RFC 3339" },
//!   "application": { "id": "…", "matter_code": "env.eia.report_form", "submit_time": "RFC 3339",
//!                    "applicant": { "credit_code": "…", "name": "…", "region_code": "350724",
//!                                   "credit_class": "B" },
//!                    "form": { "…": "form fields as JSON" },
//!                    "materials": [ { "kind": "…", "name": "…", "sha256": "…",
//!                                     "size_bytes": 1, "uri": "…" } ] },
//!   "approval": { "decision_number": "…", "decide_time": "RFC 3339", "department": "eco_env",
//!                 "reason": "…", "on_pledge": false, "revoked": true },
//!   "withdrawal": { "reason": "…", "withdraw_time": "RFC 3339" },
//!   "supplement": { "materials": [ … ], "note": "…", "fulfilled_kinds": [ "…" ],
//!                   "supplement_time": "RFC 3339" } }
//! ```
//! `approval`, `withdrawal` and `supplement` are present only on the events that carry them
//! ([`events::EVENT_SECTIONS`]): decisions, the withdrawal, a supplement.

pub mod auth;
pub mod config;
pub mod events;
pub mod mapping;
pub mod policy;

pub use auth::{AuthConfig, AuthFailure, Secret, sign_hmac, verify_bearer, verify_hmac};
pub use config::{
    ConfigError, DeliveryMode, EndpointUrl, EnvLookup, KEY_PLACEHOLDER, Mode, PlatformConfig,
    RECEIVED_SUFFIX, Reconcile, load_dir, load_dir_in, load_dir_with_env,
};
pub use events::{KNOWN_EVENT_TYPES, is_known_event_type};
pub use mapping::{
    CodeGap, CodeGaps, FieldValues, Format, GapSource, Mapping, MappingError, MappingErrorKind,
    MatterForm, Source, check_code_tables, code_table_gaps,
};
pub use policy::{CircuitPolicy, RetryPolicy};

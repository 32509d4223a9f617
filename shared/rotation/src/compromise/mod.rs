//! Compromise response: rotate, right away, every secret an incident names, as many times as its
//! provider needs so that no credential valid before the incident still works afterwards.
//!
//! - [`request`]: the "Secret Compromised" event (secrets named by ARN or by tags).
//! - [`plan`]: which secrets, in which mode, and how many rotations each needs (1 for a
//!   single-phase provider, 2 for a dual-phase one such as alternating users).
//! - [`runner`]: starts one rotation the way the secret's mode does (Secrets Manager's
//!   RotateSecret, or the workflow's state machine) and waits until its version is AWSCURRENT.
//! - [`incident`]: one incident answered once per secret (version ids derived from the
//!   incident, the record on the secret).
//! - [`bounds`]: secrets per incident, rotations per secret per hour.
//! - [`lambda`]: the function's glue (`functions/compromise`).
//! - [`marker`]: the tag that tells the functions a rotation answers a compromise.
//!
//! The same pieces serve an on-call command line: resolve a request, print the plan, run it.

pub mod bounds;
pub mod error;
pub mod incident;
pub mod lambda;
pub mod plan;
pub mod request;
pub mod runner;

pub use crate::compromise_marker as marker;
pub use bounds::Bounds;
pub use error::CompromiseError;
pub use incident::Incident;
pub use plan::SecretPlan;
pub use request::CompromiseRequest;
pub use runner::Runner;

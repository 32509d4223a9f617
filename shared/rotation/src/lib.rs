//! The rotation engine shared by every Lambda function of this project.
//!
//! It implements Secrets Manager's four-step rotation protocol ([`protocol`]) on top of a
//! provider seam ([`providers`]) that knows how to create, set and test one kind of
//! credential. Every function binary is a thin `main` around [`lambda::serve`].
//!
//! With the `driver` feature, `driver` runs a rotation's steps through the Lambda Invoke API
//! (`invoke`) the way Secrets Manager or the workflow would: the local stack's stand-in for
//! both, used by the compromise response there and by the command line.

pub mod compromise_marker;
pub mod concurrent;
pub mod config;
pub mod deadline;
pub mod error;
pub mod event;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod mode;
pub mod password;
pub mod protocol;
pub mod providers;
pub mod publisher;
pub mod report;
pub mod secrets_manager;
pub mod telemetry;
pub mod tls;
pub mod window;

#[cfg(feature = "compromise")]
pub mod compromise;
#[cfg(feature = "driver")]
pub mod driver;
#[cfg(feature = "driver")]
pub mod invoke;

pub use error::RotationError;
pub use event::{RotationContext, RotationEvent, Step};
pub use mode::{Caller, Mode, COMPROMISE_FUNCTION, FUNCTIONS};
pub use report::{Outcome, StepReport};

//! The rotation engine shared by every Lambda function of this project.
//!
//! It implements Secrets Manager's four-step rotation protocol ([`protocol`]) on top of a
//! provider seam ([`providers`]) that knows how to create, set and test one kind of
//! credential. Every function binary is a thin `main` around [`lambda::serve`].

pub mod aws_error;
pub mod config;
pub mod error;
pub mod event;
pub mod lambda;
pub mod mode;
pub mod password;
pub mod protocol;
pub mod providers;
pub mod report;
pub mod secrets_manager;
pub mod tls;

pub use error::RotationError;
pub use event::{RotationEvent, Step};
pub use mode::{Caller, Mode};
pub use report::{Outcome, StepReport};

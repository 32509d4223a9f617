//! The on-call command line's library, and the local driver that plays Secrets Manager's part
//! against `cargo lambda watch`.
//!
//! - [`rotate`]: one secret's rotation (or a compromise response) against AWS or the local stack.
//! - [`batch`]: many secrets at once, bounded concurrency, the results table.
//! - [`rollback`]: AWSCURRENT back to AWSPREVIOUS where that credential is proved to work.
//! - [`status`] and [`timeline`]: a secret's versions, schedule and credential lifecycle.
//! - [`diagnose`]: clear messages for the failures an on-call engineer meets.
//! - [`driver`], [`invoke`], [`versions`]: the shared local driver and Invoke API client (from
//!   the engine's `driver` feature), how a run and a secret's labels are rendered.

pub mod batch;
pub mod diagnose;
pub mod driver;
pub mod invoke;
pub mod rollback;
pub mod rotate;
pub mod status;
pub mod timeline;
pub mod versions;

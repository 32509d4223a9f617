//! The on-call command line's library, and the local driver that plays Secrets Manager's part
//! against `cargo lambda watch`.

pub mod driver;
pub mod invoke;
pub mod versions;

//! The test harness: the local stack started by `scripts/stack.sh`, seen from a test.
//!
//! Every helper talks to the real servers: PostgreSQL with password authentication and TLS,
//! moto's Secrets Manager over HTTP, and the functions under `cargo lambda watch`.

pub mod attacker;
pub mod catalog;
pub mod faults;
pub mod fixtures;
pub mod forward;
pub mod iam;
pub mod mysql_catalog;
pub mod mysql_echo;
pub mod policy_gate;
pub mod rds;
pub mod samples;
pub mod stack;
pub mod template;

pub use fixtures::{AlternatingUser, Credentials, MasterSecret, TestUser};
pub use stack::{assert_finished_labels, assert_succeeded, Db, Role, Stack};

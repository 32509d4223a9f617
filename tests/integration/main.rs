//! The integration tests, one binary with a module per area: the real functions under
//! `cargo lambda watch`, against the local stack's PostgreSQL and MariaDB servers (password
//! authentication, TLS) and moto's server. `scripts/test.sh` starts the stack; the fixtures
//! come from the `test-support` crate. What each module covers: `docs/testing.md`.

mod alternating_users;
mod aws_faults;
mod bad_inputs;
mod cli;
mod compromise;
mod continuity;
mod db_faults;
mod fault_matrix;
mod hostile_names;
mod iam_access_keys;
mod in_use;
mod keyring;
mod no_secrets_in_logs;
mod outcomes;
mod policy_gate;
mod profiles;
mod rds;
mod rollback;
mod sample_events;
mod single_user;
mod template;
mod tls;
mod tls_refusals;
mod trust_boundaries;
mod window;
mod workflow_recovery;

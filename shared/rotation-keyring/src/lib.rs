#![doc = include_str!("../README.md")]

/// The one message for any AWS SDK error; it lives in `rotation-consumer`, below this crate.
pub use rotation_consumer::aws_error;
pub mod ciphertext;
pub mod client;
pub mod error;
pub mod key;
pub mod keyring;
pub mod retention;
mod time;

pub use client::KeyringClient;
pub use error::KeyringError;
pub use key::{KeyId, KeyState};
pub use keyring::{KeyInfo, Keyring, Rotated, PROVIDER};
pub use retention::Retention;

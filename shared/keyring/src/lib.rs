//! An encryption keyring kept in one AWS Secrets Manager secret and rotated every hour.
//!
//! The secret holds every key still needed: one **active** key that encrypts, and
//! **decrypt-only** keys that only decrypt what earlier keys encrypted. Each rotation adds a
//! fresh 256-bit key from the OS CSPRNG as the active key, demotes the previous one, and destroys
//! (leaves out of the new version) every key past the secret's retention ([`Retention`]).
//!
//! Applications use [`KeyringClient`]: it loads the keyring's AWSCURRENT version (cached for a
//! short time), [`KeyringClient::encrypt`]s with the active key, and
//! [`KeyringClient::decrypt`]s with the key the ciphertext's header names (see [`ciphertext`]
//! for the format), refusing a destroyed key with [`KeyringError::Destroyed`].
//!
//! The rotation function uses the same types ([`Keyring::parse`], [`Keyring::rotate`],
//! [`Keyring::self_test`]), so the producer and the consumers cannot disagree on the format.

pub mod aws_error;
pub mod ciphertext;
pub mod client;
pub mod error;
mod json;
pub mod key;
pub mod keyring;
pub mod retention;
mod time;

pub use client::KeyringClient;
pub use error::KeyringError;
pub use key::{KeyId, KeyState};
pub use keyring::{KeyInfo, Keyring, Rotated, PROVIDER};
pub use retention::Retention;

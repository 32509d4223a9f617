//! Errors of the keyring. None carries key material, plaintext or ciphertext bytes: a
//! message names the field, the key id or the check that failed.

use crate::key::KeyId;

/// Everything that can go wrong with a keyring or a ciphertext.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The keyring JSON is invalid: the message names the field, never its value.
    #[error("invalid keyring: {0}")]
    Invalid(String),
    /// The bytes are not a ciphertext of this format (too short, wrong magic bytes).
    #[error("not a keyring ciphertext: {0}")]
    Malformed(String),
    /// The ciphertext's format version is not one this library reads.
    #[error("unsupported ciphertext format version {0}; this library reads version {v}", v = crate::ciphertext::VERSION)]
    UnsupportedVersion(u8),
    /// The key the ciphertext names was destroyed: past the keyring's retention, or left out
    /// of the keyring by a rotation. What it encrypted can no longer be decrypted.
    #[error("key {key} is destroyed: {reason}")]
    Destroyed {
        /// The key the ciphertext names.
        key: KeyId,
        /// Why the key counts as destroyed.
        reason: String,
    },
    /// The key the ciphertext names is not in this keyring and was never destroyed by it.
    #[error("key {key} is not in this keyring: {reason}")]
    UnknownKey {
        /// The key the ciphertext names.
        key: KeyId,
        /// Whether the key is newer than every key of this keyring (a reload may find it).
        newer: bool,
        /// What is known about it.
        reason: String,
    },
    /// Authenticated decryption failed: the ciphertext, its header or the associated data
    /// was changed after encryption.
    #[error("decryption failed: the ciphertext, its header or the associated data was altered")]
    Tampered,
    /// The keyring cannot encrypt: no key yet, or the active key is past retention.
    #[error("cannot encrypt: {0}")]
    NoActiveKey(String),
    /// Loading the keyring from Secrets Manager failed.
    #[error("Secrets Manager {operation} on {secret} failed: {message}")]
    SecretsManager {
        /// The API operation.
        operation: &'static str,
        /// The secret's ARN or name.
        secret: String,
        /// The service's error (Secrets Manager never echoes secret values).
        message: String,
    },
    /// The cryptographic library or the OS random generator failed.
    #[error("cryptography failed: {0}")]
    Crypto(&'static str),
}

/// The result type of the keyring.
pub type Result<T, E = KeyringError> = std::result::Result<T, E>;

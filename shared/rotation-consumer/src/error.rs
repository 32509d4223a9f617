//! Errors of reading a secret. None carries a secret value: a message names the secret, the
//! label and what failed (Secrets Manager never echoes a value in its errors).

/// Reading a version of the secret failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The Secrets Manager call failed.
    #[error("Secrets Manager {operation} of {stage} of {secret} failed: {message}")]
    SecretsManager {
        /// The API operation.
        operation: &'static str,
        /// The secret's ARN or name.
        secret: String,
        /// The label asked for.
        stage: &'static str,
        /// The service's error, or the transport failure.
        message: String,
    },
    /// No version carries the label (AWSPREVIOUS before the first rotation).
    #[error("{secret} has no {stage} version")]
    NoSuchVersion {
        /// The secret's ARN or name.
        secret: String,
        /// The label asked for.
        stage: &'static str,
    },
    /// The answer lacks a field the cache needs.
    #[error("GetSecretValue of {stage} of {secret} returned no {missing}")]
    Incomplete {
        /// The secret's ARN or name.
        secret: String,
        /// The label asked for.
        stage: &'static str,
        /// The missing field.
        missing: &'static str,
    },
}

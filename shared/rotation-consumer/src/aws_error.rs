//! One message for any AWS SDK error: the service's code and message, or the transport
//! failure with its causes. AWS services never echo secret values in their errors.
//!
//! It lives in this crate, the lowest of the workspace that speaks to AWS, so that the secret
//! cache, the keyring's client and the `rotation` crate share it (`rotation_keyring::aws_error`
//! is this module, re-exported).

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The message of an SDK error: `Code: message` for a service error, else the transport
/// failure with its causes.
pub fn message<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("ServiceError"),
            service.err().message().unwrap_or("no message")
        ),
        other => DisplayErrorContext(other).to_string(),
    }
}

//! The client applications use: the keyring's AWSCURRENT version, loaded from Secrets Manager
//! and cached for a short time.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::error::{KeyringError, Result};
use crate::keyring::Keyring;

/// The staging label of the version a client reads: always the current one, so that a key a
/// rotation destroyed is refused even though older versions still carry it.
pub const STAGE: &str = "AWSCURRENT";

/// Loads a keyring from Secrets Manager and encrypts and decrypts with it.
///
/// The keyring is cached for [`KeyringClient::max_age`] (60 s unless set). A ciphertext
/// naming a key newer than the cached keyring triggers one reload, so data encrypted by an
/// instance that already saw a rotation decrypts at once everywhere.
pub struct KeyringClient {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    max_age: Duration,
    cache: Mutex<Option<(Instant, Arc<Keyring>)>>,
}

impl fmt::Debug for KeyringClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringClient")
            .field("secret_id", &self.secret_id)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl KeyringClient {
    /// How long a loaded keyring is used before it is loaded again, unless set.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);

    /// A client for the keyring in secret `secret_id` (name or ARN).
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        KeyringClient {
            client,
            secret_id: secret_id.into(),
            max_age: Self::DEFAULT_MAX_AGE,
            cache: Mutex::new(None),
        }
    }

    /// Sets how long a loaded keyring is used (zero: load on every call).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How long a loaded keyring is used before it is loaded again.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The keyring: the cached one while it is fresh, else the AWSCURRENT version.
    pub async fn keyring(&self) -> Result<Arc<Keyring>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((loaded, keyring)) = cache.as_ref() {
                if loaded.elapsed() < self.max_age {
                    return Ok(keyring.clone());
                }
            }
        }
        self.refresh().await
    }

    /// Loads the AWSCURRENT version now, whatever the cache holds.
    pub async fn refresh(&self) -> Result<Arc<Keyring>> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(STAGE)
            .send()
            .await
            .map_err(|e| sdk_error(&self.secret_id, e))?;
        let text = out.secret_string().ok_or_else(|| {
            KeyringError::Invalid("the secret holds binary data, not the keyring's JSON".into())
        })?;
        let keyring = Arc::new(Keyring::parse(text)?);
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), keyring.clone()));
        }
        Ok(keyring)
    }

    /// Encrypts with the active key, binding `aad` (may be empty).
    pub async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        match self.keyring().await?.encrypt(plaintext, aad) {
            Err(KeyringError::NoActiveKey(_)) => self.refresh().await?.encrypt(plaintext, aad),
            other => other,
        }
    }

    /// Decrypts with the key the header names; a destroyed key fails with
    /// [`KeyringError::Destroyed`], an altered ciphertext with [`KeyringError::Tampered`].
    pub async fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        match self.keyring().await?.decrypt(ciphertext, aad) {
            Err(KeyringError::UnknownKey { newer: true, .. }) => {
                self.refresh().await?.decrypt(ciphertext, aad)
            }
            other => other,
        }
    }
}

fn sdk_error<E, R>(secret: &str, err: SdkError<E, R>) -> KeyringError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    KeyringError::SecretsManager {
        operation: "GetSecretValue",
        secret: secret.to_owned(),
        message: crate::aws_error::message(&err),
    }
}

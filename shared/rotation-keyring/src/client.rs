//! The client applications use: the keyring's AWSCURRENT version, read through the secret
//! cache of `rotation-consumer` (one cache for every kind of secret) and parsed once per
//! version.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rotation_consumer::{FetchError, SecretCache, Stats, Version};

use crate::error::{KeyringError, Result};
use crate::keyring::Keyring;

/// The staging label of the version a client reads: always the current one, so that a key a
/// rotation destroyed is refused even though older versions still carry it.
pub const STAGE: &str = rotation_consumer::AWSCURRENT;

/// Loads a keyring from Secrets Manager and encrypts and decrypts with it.
///
/// The keyring is cached for [`KeyringClient::max_age`] (60 s unless set). A ciphertext
/// naming a key newer than the cached keyring triggers a reload (the cache's refetch rule: at
/// most once per cached version per [`SecretCache::refetch_interval`], so ciphertexts naming a
/// future key cannot turn into a stream of GetSecretValue calls), and data encrypted by an
/// instance that already saw a rotation decrypts at once everywhere.
pub struct KeyringClient {
    secret: SecretCache,
    /// The keyring parsed from the version with this id.
    parsed: Mutex<Option<(String, Arc<Keyring>)>>,
}

impl fmt::Debug for KeyringClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringClient")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl KeyringClient {
    /// How long a loaded keyring is used before it is loaded again, unless set.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);

    /// A client for the keyring in secret `secret_id` (name or ARN).
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        KeyringClient {
            secret: SecretCache::new(client, secret_id).with_ttl(Self::DEFAULT_MAX_AGE),
            parsed: Mutex::new(None),
        }
    }

    /// Sets how long a loaded keyring is used (zero: load on every call).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.secret = self.secret.with_ttl(max_age);
        self
    }

    /// How long a loaded keyring is used before it is loaded again.
    pub fn max_age(&self) -> Duration {
        self.secret.ttl()
    }

    /// The Secrets Manager calls and reloads this client made.
    pub fn stats(&self) -> Stats {
        self.secret.stats()
    }

    /// The keyring: the cached one while it is fresh, else the AWSCURRENT version.
    pub async fn keyring(&self) -> Result<Arc<Keyring>> {
        Ok(self.load().await?.1)
    }

    /// Loads the AWSCURRENT version now, whatever the cache holds.
    pub async fn refresh(&self) -> Result<Arc<Keyring>> {
        let version = self.secret.refresh().await.map_err(fetch_error)?;
        self.parse(&version)
    }

    /// Encrypts with the active key, binding `aad` (may be empty).
    pub async fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (version, keyring) = self.load().await?;
        match keyring.encrypt(plaintext, aad) {
            Err(e @ KeyringError::NoActiveKey(_)) => match self.reload(&version).await? {
                Some(newer) => newer.encrypt(plaintext, aad),
                None => Err(e),
            },
            other => other,
        }
    }

    /// Decrypts with the key the header names; a destroyed key fails with
    /// [`KeyringError::Destroyed`], an altered ciphertext with [`KeyringError::Tampered`].
    pub async fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (version, keyring) = self.load().await?;
        match keyring.decrypt(ciphertext, aad) {
            Err(e @ KeyringError::UnknownKey { newer: true, .. }) => {
                match self.reload(&version).await? {
                    Some(newer) => newer.decrypt(ciphertext, aad),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    async fn load(&self) -> Result<(Arc<Version>, Arc<Keyring>)> {
        let version = self.secret.current().await.map_err(fetch_error)?;
        let keyring = self.parse(&version)?;
        Ok((version, keyring))
    }

    /// A newer keyring than the one of `version`, if the cache's refetch rule finds one.
    async fn reload(&self, version: &Version) -> Result<Option<Arc<Keyring>>> {
        match self
            .secret
            .refetch_current(version)
            .await
            .map_err(fetch_error)?
        {
            Some(newer) => Ok(Some(self.parse(&newer)?)),
            None => Ok(None),
        }
    }

    /// The keyring of `version`, parsed once per version id.
    fn parse(&self, version: &Version) -> Result<Arc<Keyring>> {
        use secrecy::ExposeSecret;
        if let Ok(parsed) = self.parsed.lock() {
            if let Some((id, keyring)) = parsed.as_ref() {
                if id == version.id() {
                    return Ok(keyring.clone());
                }
            }
        }
        let keyring = Arc::new(Keyring::parse(version.value().expose_secret())?);
        if let Ok(mut parsed) = self.parsed.lock() {
            *parsed = Some((version.id().to_owned(), keyring.clone()));
        }
        Ok(keyring)
    }
}

fn fetch_error(err: FetchError) -> KeyringError {
    match err {
        FetchError::SecretsManager {
            operation,
            secret,
            message,
            ..
        } => KeyringError::SecretsManager {
            operation,
            secret,
            message,
        },
        FetchError::Incomplete { .. } | FetchError::NoSuchVersion { .. } => {
            KeyringError::Invalid(err.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    //! The client's reloads against a Secrets Manager client answered by aws-smithy-mocks
    //! rules in order: a call more than scripted panics the test.

    use std::time::SystemTime;

    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_sdk_secretsmanager::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use secrecy::ExposeSecret;

    use super::*;

    /// GetSecretValue of AWSCURRENT answering `keyring` as version `id`.
    fn current(id: &'static str, keyring: &Keyring) -> Rule {
        let json = keyring.to_json().expose_secret().to_owned();
        mock!(Client::get_secret_value)
            .match_requests(|req| req.version_stage() == Some(STAGE))
            .then_output(move || {
                GetSecretValueOutput::builder()
                    .version_id(id)
                    .secret_string(json.clone())
                    .build()
            })
    }

    #[tokio::test]
    async fn a_newer_key_reloads_once_and_a_key_no_version_has_costs_no_call_per_decrypt() {
        let now = SystemTime::now();
        let empty =
            Keyring::parse(r#"{"provider":"keyring","retentionRotations":3,"keys":[]}"#).unwrap();
        let first = empty.rotate(now).unwrap().keyring;
        let second = first.rotate(now).unwrap().keyring;
        let third = second.rotate(now).unwrap().keyring;
        let rules = [
            current("v1", &first),
            current("v2", &second),
            current("v2", &second),
        ];
        let client = KeyringClient::new(
            mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, rules.iter()),
            "keyring",
        );
        assert_eq!(client.keyring().await.unwrap().keys().len(), 1);
        // Sealed by an instance that saw the next rotation: one reload finds its key.
        let newer = second.encrypt(b"newer", b"").unwrap();
        assert_eq!(client.decrypt(&newer, b"").await.unwrap(), b"newer");
        // A key that no version has yet (or a forged generation): one reload, then none
        // within the refetch interval, however many times it is decrypted.
        let future = third.encrypt(b"future", b"").unwrap();
        for _ in 0..20 {
            assert!(matches!(
                client.decrypt(&future, b"").await,
                Err(KeyringError::UnknownKey { newer: true, .. })
            ));
        }
        for (i, rule) in rules.iter().enumerate() {
            assert_eq!(rule.num_calls(), 1, "rule {i}");
        }
        assert_eq!(client.stats().fetches, 3);
    }
}

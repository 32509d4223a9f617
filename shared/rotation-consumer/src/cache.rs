//! The cache of one secret's AWSCURRENT and AWSPREVIOUS versions, and the rule that bounds the
//! Secrets Manager calls an authentication failure may cause.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::error::SdkError;
use secrecy::SecretString;

use crate::error::FetchError;

/// The staging label of the version applications use.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The staging label of the version a rotation replaced (still valid for a dual-phase secret
/// until the next rotation).
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// One version of the secret, as GetSecretValue returned it. Debug shows the version id and
/// label, never the value.
pub struct Version {
    id: String,
    stage: &'static str,
    value: SecretString,
}

impl Version {
    /// A version built by hand (for an application's own tests of its operation).
    pub fn new(id: impl Into<String>, stage: &'static str, value: SecretString) -> Self {
        Version {
            id: id.into(),
            stage,
            value,
        }
    }

    /// The version id (Secrets Manager's VersionId).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The label it was read by: [`AWSCURRENT`] or [`AWSPREVIOUS`].
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    /// The secret string (for a database secret, its JSON).
    pub fn value(&self) -> &SecretString {
        &self.value
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Version")
            .field("id", &self.id)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// What a cache did, counted since it was made: for an application's metrics, and the proof of
/// the continuity test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// GetSecretValue calls made (every label, every reason).
    pub fetches: u64,
    /// Of those, AWSCURRENT fetches an authentication failure forced before the TTL ran out.
    pub refetches: u64,
    /// Operations that reported an authentication failure (each attempt counts).
    pub authentication_failures: u64,
    /// Operations that succeeded with AWSPREVIOUS after AWSCURRENT was refused.
    pub previous_fallbacks: u64,
    /// Calls of [`SecretCache::with_credentials`] that failed because every version was refused.
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    refetches: AtomicU64,
    authentication_failures: AtomicU64,
    previous_fallbacks: AtomicU64,
    refused: AtomicU64,
}

/// A cached version and when it was fetched.
struct Entry {
    version: Arc<Version>,
    fetched: Instant,
}

#[derive(Default)]
struct State {
    current: Option<Entry>,
    /// `None` inside: fetched, and the secret has no AWSPREVIOUS version.
    previous: Option<(Option<Arc<Version>>, Instant)>,
    /// The version the last forced refetch was made for, and when.
    refetched_for: Option<(String, Instant)>,
}

/// One secret's AWSCURRENT (and, on demand, AWSPREVIOUS) version, fetched from Secrets Manager
/// and kept for a TTL.
///
/// [`SecretCache::current`] serves AWSCURRENT from the cache while it is younger than the TTL
/// (5 minutes unless set). When the credentials it held are refused,
/// [`SecretCache::refetch_current`] reads AWSCURRENT again before the TTL runs out, at most once
/// per refused version per [`SecretCache::refetch_interval`] (5 s unless set), and concurrent
/// callers share one call: a wrong password costs at most one extra GetSecretValue per
/// interval, whatever the request rate. [`SecretCache::with_credentials`] puts it together for
/// an application's operation.
pub struct SecretCache {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    ttl: Duration,
    refetch_interval: Duration,
    state: Mutex<State>,
    /// Held while a fetch is in flight: concurrent callers wait for it instead of calling too.
    fetching: tokio::sync::Mutex<()>,
    counters: Counters,
}

impl fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCache")
            .field("secret_id", &self.secret_id)
            .field("ttl", &self.ttl)
            .field("refetch_interval", &self.refetch_interval)
            .finish_non_exhaustive()
    }
}

impl SecretCache {
    /// How long a fetched version is used before it is fetched again, unless set.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    /// The shortest time between two forced refetches for the same refused version, unless set.
    pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

    /// A cache of secret `secret_id` (name or ARN), read with `client`.
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretCache {
            client,
            secret_id: secret_id.into(),
            ttl: Self::DEFAULT_TTL,
            refetch_interval: Self::DEFAULT_REFETCH_INTERVAL,
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
        }
    }

    /// Sets how long a fetched version is used (zero: fetch on every call).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the shortest time between two forced refetches for the same refused version.
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// How long a fetched version is used before it is fetched again.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The shortest time between two forced refetches for the same refused version.
    pub fn refetch_interval(&self) -> Duration {
        self.refetch_interval
    }

    /// The secret this cache reads.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// What this cache did so far.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            fetches: c.fetches.load(Ordering::Relaxed),
            refetches: c.refetches.load(Ordering::Relaxed),
            authentication_failures: c.authentication_failures.load(Ordering::Relaxed),
            previous_fallbacks: c.previous_fallbacks.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }

    /// AWSCURRENT: the cached version while it is younger than the TTL, else fetched.
    pub async fn current(&self) -> Result<Arc<Version>, FetchError> {
        if let Some(version) = self.fresh_current() {
            return Ok(version);
        }
        let _fetching = self.fetching.lock().await;
        // Another caller may have fetched it while this one waited.
        if let Some(version) = self.fresh_current() {
            return Ok(version);
        }
        self.fetch_current().await
    }

    /// AWSCURRENT fetched now, whatever the cache holds (for a caller that knows the secret
    /// changed; an authentication failure goes through [`SecretCache::refetch_current`]).
    pub async fn refresh(&self) -> Result<Arc<Version>, FetchError> {
        let _fetching = self.fetching.lock().await;
        self.fetch_current().await
    }

    /// After the credentials of version `refused` were refused: a newer AWSCURRENT, or `None`
    /// when there is none to try.
    ///
    /// If the cache already holds a version other than `refused` (another caller refetched),
    /// that one, with no call. Else AWSCURRENT is fetched, unless a forced refetch for the same
    /// version happened less than [`SecretCache::refetch_interval`] ago; `None` when the fetch
    /// was skipped or returned `refused` again (no rotation yet: the credentials are wrong).
    pub async fn refetch_current(
        &self,
        refused: &Version,
    ) -> Result<Option<Arc<Version>>, FetchError> {
        let _fetching = self.fetching.lock().await;
        {
            let state = self.lock();
            if let Some(entry) = &state.current {
                if entry.version.id != refused.id {
                    return Ok(Some(entry.version.clone()));
                }
            }
            if let Some((id, at)) = &state.refetched_for {
                if *id == refused.id && at.elapsed() < self.refetch_interval {
                    return Ok(None);
                }
            }
        }
        self.lock().refetched_for = Some((refused.id.clone(), Instant::now()));
        self.counters.refetches.fetch_add(1, Ordering::Relaxed);
        let version = self.fetch_current().await?;
        Ok((version.id != refused.id).then_some(version))
    }

    /// AWSPREVIOUS: cached for the TTL like AWSCURRENT (and dropped when a refetch finds a new
    /// AWSCURRENT); `None` when the secret has no such version.
    pub async fn previous(&self) -> Result<Option<Arc<Version>>, FetchError> {
        if let Some(previous) = self.fresh_previous() {
            return Ok(previous);
        }
        let _fetching = self.fetching.lock().await;
        if let Some(previous) = self.fresh_previous() {
            return Ok(previous);
        }
        let previous = match self.fetch(AWSPREVIOUS).await {
            Ok(version) => Some(Arc::new(version)),
            Err(FetchError::NoSuchVersion { .. }) => None,
            Err(e) => return Err(e),
        };
        self.lock().previous = Some((previous.clone(), Instant::now()));
        Ok(previous)
    }

    /// Runs `operation` with AWSCURRENT's version; when it reports an authentication failure,
    /// again with a refetched AWSCURRENT ([`SecretCache::refetch_current`]), then with
    /// AWSPREVIOUS. A [`Failure::Other`] is returned at once, untried with other versions.
    ///
    /// A new connection (or a pool made again) per attempt: the operation gets the version and
    /// reads its credentials from [`Version::value`].
    pub async fn with_credentials<T, E, F, Fut>(&self, mut operation: F) -> Result<T, Error<E>>
    where
        F: FnMut(Arc<Version>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure<E>>>,
    {
        let current = self.current().await.map_err(Error::Fetch)?;
        let mut refused = match self.attempt(&mut operation, current.clone()).await {
            Attempt::Done(result) => return result,
            Attempt::Refused(error) => error,
        };
        let mut tried = vec![current.id.clone()];
        let fresh = self.refetch_current(&current).await.map_err(Error::Fetch)?;
        if let Some(fresh) = fresh {
            tried.push(fresh.id.clone());
            refused = match self.attempt(&mut operation, fresh).await {
                Attempt::Done(result) => return result,
                Attempt::Refused(error) => error,
            };
        }
        if let Some(previous) = self.previous().await.map_err(Error::Fetch)? {
            if !tried.contains(&previous.id) {
                tried.push(previous.id.clone());
                refused = match self.attempt(&mut operation, previous).await {
                    Attempt::Done(result) => {
                        if result.is_ok() {
                            self.counters
                                .previous_fallbacks
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        return result;
                    }
                    Attempt::Refused(error) => error,
                };
            }
        }
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        Err(Error::Refused {
            versions: tried,
            error: refused,
        })
    }

    async fn attempt<T, E, F, Fut>(&self, operation: &mut F, version: Arc<Version>) -> Attempt<T, E>
    where
        F: FnMut(Arc<Version>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure<E>>>,
    {
        match operation(version).await {
            Ok(value) => Attempt::Done(Ok(value)),
            Err(Failure::Other(error)) => Attempt::Done(Err(Error::Operation(error))),
            Err(Failure::Authentication(error)) => {
                self.counters
                    .authentication_failures
                    .fetch_add(1, Ordering::Relaxed);
                Attempt::Refused(error)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few fields set at once: a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn fresh_current(&self) -> Option<Arc<Version>> {
        let state = self.lock();
        let entry = state.current.as_ref()?;
        (entry.fetched.elapsed() < self.ttl).then(|| entry.version.clone())
    }

    fn fresh_previous(&self) -> Option<Option<Arc<Version>>> {
        let state = self.lock();
        let (previous, fetched) = state.previous.as_ref()?;
        (fetched.elapsed() < self.ttl).then(|| previous.clone())
    }

    /// Fetches AWSCURRENT and caches it; a new version also drops the cached AWSPREVIOUS (the
    /// labels moved). The caller holds `fetching`.
    async fn fetch_current(&self) -> Result<Arc<Version>, FetchError> {
        let version = Arc::new(self.fetch(AWSCURRENT).await?);
        let mut state = self.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|entry| entry.version.id != version.id)
        {
            state.previous = None;
        }
        state.current = Some(Entry {
            version: version.clone(),
            fetched: Instant::now(),
        });
        Ok(version)
    }

    async fn fetch(&self, stage: &'static str) -> Result<Version, FetchError> {
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await
            .map_err(|e| {
                let not_found = matches!(&e, SdkError::ServiceError(s) if s.err().is_resource_not_found_exception());
                if not_found && stage != AWSCURRENT {
                    FetchError::NoSuchVersion {
                        secret: self.secret_id.clone(),
                        stage,
                    }
                } else {
                    FetchError::SecretsManager {
                        operation: "GetSecretValue",
                        secret: self.secret_id.clone(),
                        stage,
                        message: crate::aws_error::message(&e),
                    }
                }
            })?;
        let secret = || self.secret_id.clone();
        let id = out
            .version_id()
            .ok_or_else(|| FetchError::Incomplete {
                secret: secret(),
                stage,
                missing: "VersionId",
            })?
            .to_owned();
        let value = out.secret_string().ok_or_else(|| FetchError::Incomplete {
            secret: secret(),
            stage,
            missing: "SecretString (the secret holds binary data)",
        })?;
        Ok(Version {
            id,
            stage,
            value: SecretString::from(value.to_owned()),
        })
    }
}

/// How an application's operation failed, as the application classifies it.
#[derive(Debug)]
pub enum Failure<E> {
    /// The credentials were refused (a database's invalid password, STS's
    /// InvalidClientTokenId): [`SecretCache::with_credentials`] tries the next version.
    Authentication(E),
    /// Anything else (the network, a query's error): returned at once.
    Other(E),
}

/// Why [`SecretCache::with_credentials`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error<E> {
    /// The secret could not be read.
    #[error(transparent)]
    Fetch(FetchError),
    /// The operation failed for a reason other than authentication.
    #[error("{0}")]
    Operation(E),
    /// Every version tried was refused; `error` is the last refusal.
    #[error("the credentials of every version tried were refused ({}): {error}", versions.join(", "))]
    Refused {
        /// The version ids tried, in order.
        versions: Vec<String>,
        /// The last authentication failure.
        error: E,
    },
}

enum Attempt<T, E> {
    /// Succeeded, or failed in a way no other version changes.
    Done(Result<T, Error<E>>),
    /// The credentials were refused.
    Refused(E),
}

#[cfg(test)]
mod tests;

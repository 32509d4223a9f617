//! Applications built on the consumer library (`rotation-consumer`, and the keyring's client
//! on it) keep working through ten rotations of their secret with zero failed requests: an
//! alternating-users PostgreSQL and MariaDB secret, an IAM access key (STS through the stack's
//! recorder, which refuses a deleted key or a wrong signature as AWS does) and the keyring.
//!
//! Each application is a task that makes requests in a loop while the test rotates its secret
//! through the real `rotate` function. A database request opens a new connection (verified
//! TLS, a password login) and runs `SELECT 1`: every request authenticates, so every
//! credential change meets the library, where a pool would keep sessions that a password
//! change does not end and hide it. An IAM request is STS GetCallerIdentity signed with the
//! key. The caches keep a version for an hour, longer than the test, so an application learns
//! of a rotation only when its credentials are refused: the library's refetch and fallback are
//! what keeps it working. The keyring's application is two instances sharing their records:
//! one reads the keyring on every call, the other keeps it for an hour and learns of a new key
//! from a ciphertext that names it. The figures are printed (`--nocapture`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sts::error::ProvideErrorMetadata;
use mysql_async::prelude::Queryable;
use rotation::Mode;
use rotation::RotationError;
use rotation_consumer::{Failure, SecretCache, Stats};
use rotation_keyring::KeyringClient;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use test_support::{assert_succeeded, Db, Stack};

/// Rotations per secret.
const ROTATIONS: u64 = 10;
/// Requests each application must make from the start of one rotation to the start of the
/// next (so that the test cannot pass by making none).
const MIN_REQUESTS_PER_ROTATION: u64 = 5;
/// Longer than the test: a cache refreshes only after a refusal.
const TTL: Duration = Duration::from_secs(3600);
/// How long the test waits for an application's requests before it calls it stuck.
const STUCK: Duration = Duration::from_secs(60);

/// An application: one request, and what its caches did.
trait Application: Send + Sync + 'static {
    /// One request; the error says why it failed (never a secret).
    fn request(&self) -> impl Future<Output = Result<(), String>> + Send;
    /// Its caches' counts, summed.
    fn stats(&self) -> Stats;
}

/// What one application's run measured.
struct Figures {
    kind: &'static str,
    requests: u64,
    fewest_per_rotation: u64,
    during_rotations: u64,
    failures: u64,
    stats: Stats,
}

#[tokio::test(flavor = "multi_thread")]
async fn applications_on_the_consumer_library_never_fail_through_ten_rotations() {
    let stack = Stack::from_env().await;
    let figures = tokio::join!(
        database(&stack, Db::Postgres, "PostgreSQL alternating"),
        database(&stack, Db::MariaDb, "MariaDB alternating"),
        iam(&stack),
        keyring(&stack),
    );
    let figures = [figures.0, figures.1, figures.2, figures.3];
    println!(
        "{:<24}{:>10}{:>10}{:>14}{:>18}{:>10}{:>11}{:>23}{:>16}",
        "application",
        "rotations",
        "requests",
        "min/rotation",
        "during rotations",
        "failures",
        "refetches",
        "AWSPREVIOUS fallbacks",
        "GetSecretValue"
    );
    for f in &figures {
        println!(
            "{:<24}{:>10}{:>10}{:>14}{:>18}{:>10}{:>11}{:>23}{:>16}",
            f.kind,
            ROTATIONS,
            f.requests,
            f.fewest_per_rotation,
            f.during_rotations,
            f.failures,
            f.stats.refetches,
            f.stats.previous_fallbacks,
            f.stats.fetches
        );
    }
    for f in &figures {
        assert_eq!(f.failures, 0, "{}: failed requests", f.kind);
        assert_eq!(f.stats.refused, 0, "{}: refused", f.kind);
        assert!(
            f.fewest_per_rotation >= MIN_REQUESTS_PER_ROTATION,
            "{}: {} requests in a rotation",
            f.kind,
            f.fewest_per_rotation
        );
    }
}

/// Runs `application` in a loop while the secret `arn` is rotated [`ROTATIONS`] times.
async fn run(
    stack: &Stack,
    kind: &'static str,
    arn: &str,
    application: Arc<impl Application>,
) -> Figures {
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = tokio::spawn({
        let (application, requests, failures, stop) = (
            application.clone(),
            requests.clone(),
            failures.clone(),
            stop.clone(),
        );
        async move {
            while !stop.load(Ordering::Relaxed) {
                if let Err(e) = application.request().await {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("{kind}: request failed: {e}");
                }
                requests.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let made = || requests.load(Ordering::Relaxed);
    let driver = stack.driver(Mode::SecretsManager);
    let (mut during_rotations, mut fewest_per_rotation) = (0, u64::MAX);
    for round in 1..=ROTATIONS {
        let start = made();
        let rotation = driver.rotate(arn).await.unwrap();
        assert_succeeded(&rotation);
        during_rotations += made() - start;
        let waiting = Instant::now();
        while made() - start < MIN_REQUESTS_PER_ROTATION && waiting.elapsed() < STUCK {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let in_round = made() - start;
        assert!(
            in_round >= MIN_REQUESTS_PER_ROTATION,
            "{kind} round {round}: {in_round} requests in {STUCK:?}: the application is stuck"
        );
        fewest_per_rotation = fewest_per_rotation.min(in_round);
    }
    stop.store(true, Ordering::Relaxed);
    worker.await.expect("the application's task");
    // Every password, key and key material the rotations made, for the log scan.
    stack.all_values(arn).await;
    Figures {
        kind,
        requests: made(),
        fewest_per_rotation,
        during_rotations,
        failures: failures.load(Ordering::Relaxed),
        stats: application.stats(),
    }
}

/// An authentication failure, told apart from the rest as an application would.
fn classify(e: RotationError) -> Failure<String> {
    if e.is_authentication_failure() {
        Failure::Authentication(e.to_string())
    } else {
        Failure::Other(e.to_string())
    }
}

/// A string field of a secret's JSON (either spelling).
fn field(value: &Value, names: [&str; 2]) -> Result<String, Failure<String>> {
    names
        .iter()
        .find_map(|name| value[*name].as_str())
        .map(str::to_owned)
        .ok_or_else(|| Failure::Other(format!("the secret has no {}", names[0])))
}

fn parse(version: &rotation_consumer::Version) -> Result<Value, Failure<String>> {
    serde_json::from_str(version.value().expose_secret())
        .map_err(|_| Failure::Other("the secret is not JSON".to_owned()))
}

/// An application of a database: a new connection and `SELECT 1` per request.
struct DatabaseApplication {
    stack: Stack,
    db: Db,
    secret: SecretCache,
}

impl Application for DatabaseApplication {
    async fn request(&self) -> Result<(), String> {
        let (stack, db) = (&self.stack, self.db);
        self.secret
            .with_credentials(|version| async move {
                let value = parse(&version)?;
                let user = field(&value, ["username", "username"])?;
                let password = SecretString::from(field(&value, ["password", "password"])?);
                match db {
                    Db::Postgres => {
                        let session = stack.pg_login(&user, &password).await.map_err(classify)?;
                        session
                            .simple_query("SELECT 1")
                            .await
                            .map_err(|e| Failure::Other(e.to_string()))?;
                    }
                    Db::MariaDb => {
                        let mut session = stack
                            .mysql_login(&user, &password)
                            .await
                            .map_err(classify)?;
                        session
                            .conn()
                            .query_drop("SELECT 1")
                            .await
                            .map_err(|e| Failure::Other(e.to_string()))?;
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())
    }

    fn stats(&self) -> Stats {
        self.secret.stats()
    }
}

async fn database(stack: &Stack, db: Db, kind: &'static str) -> Figures {
    let arn = stack
        .alternating_user_with_secret(db, "continuity", false, Mode::SecretsManager)
        .await
        .app
        .secret_arn;
    let application = Arc::new(DatabaseApplication {
        stack: stack.clone(),
        db,
        secret: SecretCache::new(stack.secrets.clone(), &arn).with_ttl(TTL),
    });
    run(stack, kind, &arn, application).await
}

/// An application of an IAM access key: STS GetCallerIdentity signed with it per request.
struct IamApplication {
    stack: Stack,
    user_arn: String,
    secret: SecretCache,
}

impl Application for IamApplication {
    async fn request(&self) -> Result<(), String> {
        let (aws, user_arn) = (&self.stack.aws, &self.user_arn);
        self.secret
            .with_credentials(|version| async move {
                let value = parse(&version)?;
                let credentials = aws_sdk_sts::config::Credentials::new(
                    field(&value, ["AccessKeyId", "accessKeyId"])?,
                    field(&value, ["SecretAccessKey", "secretAccessKey"])?,
                    None,
                    None,
                    "continuity",
                );
                let sts = aws_sdk_sts::Client::from_conf(
                    aws_sdk_sts::config::Builder::from(aws)
                        .credentials_provider(credentials)
                        .build(),
                );
                match sts.get_caller_identity().send().await {
                    Ok(out) if out.arn() == Some(user_arn.as_str()) => Ok(()),
                    Ok(out) => Err(Failure::Other(format!(
                        "the key authenticates as {:?}",
                        out.arn()
                    ))),
                    Err(e) => {
                        let message = aws_sdk_sts::error::DisplayErrorContext(&e).to_string();
                        match e.code() {
                            Some("InvalidClientTokenId" | "SignatureDoesNotMatch") => {
                                Err(Failure::Authentication(message))
                            }
                            _ => Err(Failure::Other(message)),
                        }
                    }
                }
            })
            .await
            .map_err(|e| e.to_string())
    }

    fn stats(&self) -> Stats {
        self.secret.stats()
    }
}

async fn iam(stack: &Stack) -> Figures {
    let user = stack
        .iam_user_with_secret("continuity", Mode::SecretsManager)
        .await;
    let application = Arc::new(IamApplication {
        stack: stack.clone(),
        user_arn: stack.user_arn(&user.user).await,
        secret: SecretCache::new(stack.secrets.clone(), &user.secret_arn).with_ttl(TTL),
    });
    run(stack, "IAM access key", &user.secret_arn, application).await
}

/// An application of the keyring: two instances, one reading the keyring on every call, one
/// keeping it for [`TTL`]. Each request, one instance encrypts a record, the other decrypts it
/// and the first record of all (written before the first rotation).
struct KeyringApplication {
    instances: [KeyringClient; 2],
    aad: Vec<u8>,
    first: Vec<u8>,
    requests: AtomicU64,
}

impl Application for KeyringApplication {
    async fn request(&self) -> Result<(), String> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let writer = &self.instances[(n % 2) as usize];
        let reader = &self.instances[((n + 1) % 2) as usize];
        let plaintext = format!("record {n}");
        let sealed = writer
            .encrypt(plaintext.as_bytes(), &self.aad)
            .await
            .map_err(|e| format!("encrypt: {e}"))?;
        for (ciphertext, expected) in [
            (&sealed, plaintext.as_bytes()),
            (&self.first, b"record before the rotations".as_slice()),
        ] {
            let opened = reader
                .decrypt(ciphertext, &self.aad)
                .await
                .map_err(|e| format!("decrypt: {e}"))?;
            if opened != expected {
                return Err("decrypt: another plaintext".into());
            }
        }
        Ok(())
    }

    fn stats(&self) -> Stats {
        let [a, b] = [self.instances[0].stats(), self.instances[1].stats()];
        Stats {
            fetches: a.fetches + b.fetches,
            refetches: a.refetches + b.refetches,
            authentication_failures: a.authentication_failures + b.authentication_failures,
            previous_fallbacks: a.previous_fallbacks + b.previous_fallbacks,
            refused: a.refused + b.refused,
        }
    }
}

async fn keyring(stack: &Stack) -> Figures {
    // Retention past the test: every record written stays readable.
    let value = json!({"provider": "keyring", "retentionRotations": ROTATIONS + 2, "keys": []});
    let arn = stack
        .create_rotating_secret(&Stack::unique("continuity"), &value, Mode::SecretsManager)
        .await;
    // The first key (a new keyring has none).
    assert_succeeded(
        &stack
            .driver(Mode::SecretsManager)
            .rotate(&arn)
            .await
            .unwrap(),
    );
    let instances = [
        KeyringClient::new(stack.secrets.clone(), &arn).with_max_age(Duration::ZERO),
        KeyringClient::new(stack.secrets.clone(), &arn).with_max_age(TTL),
    ];
    let aad = arn.as_bytes().to_vec();
    let first = instances[1]
        .encrypt(b"record before the rotations", &aad)
        .await
        .expect("the first record");
    let application = Arc::new(KeyringApplication {
        instances,
        aad,
        first,
        requests: AtomicU64::new(0),
    });
    run(stack, "keyring", &arn, application).await
}

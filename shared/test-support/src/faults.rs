//! Fault injection for the tests: a TCP proxy with toxics (noxious, the Rust port of Shopify's
//! Toxiproxy) between the functions and a database, and a private PostgreSQL server a test may
//! stop and start without disturbing the stack's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop, Stopper};
use noxious::socket::TcpListener;
use noxious::toxic::{StreamDirection, Toxic, ToxicKind};
use rotation::error::Credential;
use rotation::providers::database_secret::{Endpoint, TlsMode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::Stack;

/// A running toxic proxy; dropping it (or [`FaultProxy::stop`]) closes its port, so that
/// connections are refused.
#[derive(Debug)]
pub struct FaultProxy {
    stopper: Option<Stopper>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:`listen` and forwards to 127.0.0.1:`upstream` through `toxics`.
    pub async fn start(listen: u16, upstream: u16, toxics: Vec<ToxicKind>) -> Self {
        let config = ProxyConfig {
            name: format!("fault-{listen}"),
            listen: format!("127.0.0.1:{listen}"),
            upstream: format!("127.0.0.1:{upstream}"),
            enabled: true,
            rand_seed: None,
        };
        let toxics = toxics
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Toxic {
                kind,
                name: format!("toxic-{i}"),
                toxicity: 1.0,
                direction: StreamDirection::Downstream,
            })
            .collect();
        let (listener, info) = ProxyRunner::initialize_proxy::<TcpListener>(
            config,
            Toxics {
                upstream: Vec::new(),
                downstream: toxics,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("fault proxy on port {listen}: {e}"));
        let (stop, stopper) = Stop::new();
        let (_close, closer) = Close::new();
        // No toxic changes at run time: a new proxy replaces this one instead.
        let (_events, receiver) = bmrng::channel(1);
        tokio::spawn(async move {
            let _ = ProxyRunner::run_proxy(listener, info, receiver, stop, closer).await;
        });
        FaultProxy {
            stopper: Some(stopper),
        }
    }

    /// A connection that is accepted and then never answered.
    pub fn hang() -> ToxicKind {
        ToxicKind::Timeout { timeout: 0 }
    }

    /// Every chunk from the server delayed by `ms` milliseconds.
    pub fn latency(ms: u64) -> ToxicKind {
        ToxicKind::Latency {
            latency: ms,
            jitter: 0,
        }
    }

    /// Stops listening and cuts the connections.
    pub async fn stop(mut self) {
        self.halt();
        // The accept loop notices the stop signal asynchronously.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    fn halt(&mut self) {
        if let Some(stopper) = self.stopper.take() {
            stopper.stop();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A private PostgreSQL server (password authentication, TLS with the stack's certificate),
/// removed when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    admin_password: SecretString,
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop().unwrap_or_else(|| PathBuf::from("/usr/bin"))
}

/// Runs a PostgreSQL tool, as the postgres user when this process is root (PostgreSQL refuses
/// to run as root).
fn as_pg(tool: &str, args: &[&str]) {
    let program = pg_bin().join(tool);
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let output = if is_root {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .args(args)
            .output()
    } else {
        Command::new(&program).args(args).output()
    };
    let output = output.unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        output.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PrivatePostgres {
    /// initdb and start a server on `port`: TLS, SCRAM for every login.
    pub fn start(stack: &Stack, port: u16) -> Self {
        Self::start_with(
            stack,
            port,
            "",
            "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
    }

    /// initdb and start a server on `port` with `extra_conf` appended to `postgresql.conf` and
    /// `hba` as its `pg_hba.conf`.
    pub fn start_with(stack: &Stack, port: u16, extra_conf: &str, hba: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rotation-private-pg-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).expect("private PostgreSQL dir");
        let admin_password = Stack::password();
        let tls = stack.ca_file.parent().expect("the stack's TLS dir");
        std::fs::write(dir.join("pw"), admin_password.expose_secret()).expect("pwfile");
        std::fs::copy(tls.join("server.pem"), dir.join("server.crt")).expect("certificate");
        std::fs::copy(tls.join("server.key"), dir.join("server.key")).expect("key");
        let chown = |path: &Path| {
            let _ = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(path)
                .status();
        };
        std::fs::set_permissions(
            dir.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("key mode");
        chown(&dir);
        let data = dir.join("data");
        let s = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
        as_pg(
            "initdb",
            &[
                "-D",
                &s(&data),
                "-U",
                "rotation_admin",
                &format!("--pwfile={}", s(&dir.join("pw"))),
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
            ],
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n\
             password_encryption = 'scram-sha-256'\n{extra_conf}",
            s(&dir.join("sock")),
            s(&dir.join("server.crt")),
            s(&dir.join("server.key")),
        );
        let mut existing = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing).expect("conf");
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        chown(&dir);
        let server = PrivatePostgres {
            dir,
            port,
            admin_password,
        };
        server.start_again();
        server
    }

    /// Starts the stopped server.
    pub fn start_again(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        as_pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Immediate shutdown: the server drops every connection without a goodbye.
    pub fn stop_immediately(&self) {
        let data = self.dir.join("data");
        as_pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// The endpoint of this server.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port: self.port,
            dbname: Some("postgres".into()),
            tls: TlsMode::Verified,
        }
    }

    /// Runs SQL as the server's superuser (over TLS, SCRAM).
    pub async fn admin_sql(&self, stack: &Stack, sql: &str) {
        self.admin_sql_with(&stack.tls, sql).await;
    }

    /// Runs SQL as the server's superuser, trusting `tls`.
    pub async fn admin_sql_with(&self, tls: &Arc<rotation::tls::ClientConfig>, sql: &str) {
        let admin = rotation::providers::postgres::connect(
            tls,
            Duration::from_secs(10),
            &self.endpoint(),
            "rotation_admin",
            &self.admin_password,
            Credential::Master,
        )
        .await
        .expect("admin login to the private PostgreSQL");
        admin
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("private PostgreSQL SQL failed: {e}: {sql}"));
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Creates a login user with a random password.
    pub async fn create_user(&self, stack: &Stack, name: &str) -> SecretString {
        let password = Stack::password();
        let verifier =
            postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes());
        self.admin_sql(
            stack,
            &format!(
                "CREATE ROLE {} WITH LOGIN PASSWORD {}",
                postgres_protocol::escape::escape_identifier(name),
                postgres_protocol::escape::escape_literal(&verifier)
            ),
        )
        .await;
        password
    }

    /// Tries to log in to this server at `port` (itself, or a proxy in front of it).
    pub async fn login(
        &self,
        stack: &Stack,
        user: &str,
        password: &SecretString,
    ) -> Result<(), rotation::RotationError> {
        rotation::providers::postgres::connect(
            &stack.tls,
            Duration::from_secs(10),
            &self.endpoint(),
            user,
            password,
            Credential::Current,
        )
        .await
        .map(|_| ())
    }

    /// A single-user secret for `user` at 127.0.0.1:`port`.
    pub fn secret(port: u16, user: &str, password: &SecretString) -> Value {
        json!({
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": port,
            "username": user,
            "password": password.expose_secret(),
            "dbname": "postgres",
        })
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = std::panic::catch_unwind(|| self.stop_immediately());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port of 127.0.0.1 free right now, chosen by the kernel. Fixed ports in the ephemeral
/// range (32768-60999) can be taken at any moment by an outgoing connection's local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

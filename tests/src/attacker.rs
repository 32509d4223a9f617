//! A server the writer of a secret controls: a second private PostgreSQL cluster, started by
//! the test that needs it and stopped when the handle drops.
//!
//! It runs beside the stack's servers with its own data directory and port, serves TLS with the
//! stack's test certificate (a rogue server with a valid certificate: the worst case), and logs
//! every connection (`log_connections`), so a test can prove that the master never connected
//! there. Members of `cleartext_login` and `md5_login` are asked for their password in
//! cleartext or as MD5, as a rogue server would ask, to prove the master never answers.
//!
//! It is started from the test rather than by `scripts/stack.sh` so that each test gets a
//! fresh, private log (concurrent tests cannot write into each other's evidence) and the
//! shared stack stays as it is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use rotation::error::Credential;
use rotation::providers::database_secret::{Endpoint, TlsMode};
use rotation::providers::postgres::connect;
use rotation::tls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};

use crate::Stack;

/// The cluster's superuser (it logs in only through the cluster's Unix socket directory or
/// with its password over TLS).
const ADMIN: &str = "writer_admin";

/// The writer's own PostgreSQL server.
pub struct WriterServer {
    /// Its host (127.0.0.1).
    pub host: String,
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    admin_password: SecretString,
    tls: Arc<ClientConfig>,
}

/// The newest PostgreSQL binaries, as `scripts/stack.sh` finds them.
fn pg_bin(name: &str) -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join(name).exists())
        .max_by_key(|p| {
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        });
    newest.map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as the postgres user when running as root (PostgreSQL refuses
/// to run as root); panics with its output on failure.
fn run_pg(program: &str, args: &[&str]) {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(program));
        c
    } else {
        Command::new(pg_bin(program))
    };
    let out = command.args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl WriterServer {
    /// Starts the cluster (a few seconds: initdb and start).
    pub async fn start(stack: &Stack) -> Self {
        let dir = std::env::temp_dir().join(Stack::unique("writer-pg"));
        std::fs::create_dir_all(dir.join("sock")).expect("writer dir");
        let admin_password = Stack::password();
        std::fs::write(dir.join("pwfile"), admin_password.expose_secret()).expect("pwfile");
        let tls_dir = stack.ca_file.parent().expect("the stack's TLS directory");
        for (from, to) in [("server.pem", "server.crt"), ("server.key", "server.key")] {
            std::fs::copy(tls_dir.join(from), dir.join(to)).expect("certificate");
        }
        let path = |p: &str| dir.join(p).display().to_string();
        let chmod = Command::new("chmod")
            .args(["600", &path("server.key")])
            .status();
        assert!(chmod.is_ok_and(|s| s.success()));
        if is_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:", &dir.display().to_string()])
                .status();
            assert!(chown.is_ok_and(|s| s.success()));
        }
        let data = path("data");
        run_pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                ADMIN,
                &format!("--pwfile={}", path("pwfile")),
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
            ],
        );
        let port = free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n\
             password_encryption = 'scram-sha-256'\nlog_connections = on\n",
            path("sock"),
            path("server.crt"),
            path("server.key"),
        );
        append(&dir.join("data/postgresql.conf"), &conf);
        std::fs::write(
            dir.join("data/pg_hba.conf"),
            "local   all all                             scram-sha-256\n\
             hostssl all +cleartext_login 127.0.0.1/32   password\n\
             hostssl all +md5_login       127.0.0.1/32   md5\n\
             host    all all              127.0.0.1/32   scram-sha-256\n",
        )
        .expect("pg_hba.conf");
        run_pg(
            "pg_ctl",
            &["-D", &data, "-l", &path("server.log"), "-w", "start"],
        );
        let server = WriterServer {
            host: "127.0.0.1".into(),
            port,
            dir,
            admin_password,
            tls: stack.tls.clone(),
        };
        server
            .sql("CREATE ROLE cleartext_login NOLOGIN; CREATE ROLE md5_login NOLOGIN")
            .await;
        server
    }

    /// The cluster's endpoint, database `postgres`.
    pub fn endpoint(&self, tls: TlsMode) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port,
            dbname: Some("postgres".into()),
            tls,
        }
    }

    /// Runs SQL as the cluster's superuser.
    pub async fn sql(&self, sql: &str) {
        let client = connect(
            &self.tls,
            Duration::from_secs(10),
            &self.endpoint(TlsMode::Verified),
            ADMIN,
            &self.admin_password,
            Credential::Current,
        )
        .await
        .expect("writer server admin login");
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("writer server SQL failed: {e}: {sql}"));
    }

    /// Creates a login role with `options` (e.g. `IN ROLE cleartext_login`) and a random
    /// password, stored as a SCRAM verifier, or as an MD5 hash when `md5`; returns the password.
    pub async fn create_user(&self, name: &str, options: &str, md5: bool) -> SecretString {
        let password = Stack::password();
        let stored = if md5 {
            let digest = md5_hex(&format!("{}{name}", password.expose_secret()));
            format!("md5{digest}")
        } else {
            postgres_protocol::password::scram_sha_256(password.expose_secret().as_bytes())
        };
        self.sql(&format!(
            "CREATE ROLE {} WITH LOGIN {options} PASSWORD {}",
            escape_identifier(name),
            escape_literal(&stored)
        ))
        .await;
        password
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The connections the server received so far (`log_connections` lines).
    pub fn connections(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("connection received"))
            .map(str::to_owned)
            .collect()
    }

    /// The log lines that name `user` (authorized, failed or refused logins).
    pub fn lines_naming(&self, user: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("user={user} ")) || l.contains(&format!("\"{user}\"")))
            .map(str::to_owned)
            .collect()
    }
}

/// MD5 in hex, as PostgreSQL's `md5` password hashes use it.
fn md5_hex(text: &str) -> String {
    let out = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("md5sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("md5sum output")
        .to_owned()
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("postgresql.conf");
}

impl Drop for WriterServer {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_bin("pg_ctl"));
            c
        } else {
            Command::new(pg_bin("pg_ctl"))
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

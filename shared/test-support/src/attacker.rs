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
//! shared stack stays as it is. The cluster itself is a [`PrivatePostgres`] with its own
//! configuration and `pg_hba.conf`.

use std::process::Command;
use std::sync::Arc;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use rotation::tls::ClientConfig;
use secrecy::{ExposeSecret, SecretString};

use crate::faults::{free_port, PrivatePostgres};
use crate::Stack;

/// Password logins in cleartext for members of `cleartext_login`, as MD5 for members of
/// `md5_login`, SCRAM for everyone else, with or without TLS.
const HBA: &str = "local   all all                             scram-sha-256\n\
                   hostssl all +cleartext_login 127.0.0.1/32   password\n\
                   hostssl all +md5_login       127.0.0.1/32   md5\n\
                   host    all all              127.0.0.1/32   scram-sha-256\n";

/// The writer's own PostgreSQL server.
pub struct WriterServer {
    /// Its host (127.0.0.1).
    pub host: String,
    /// Its port.
    pub port: u16,
    server: PrivatePostgres,
    tls: Arc<ClientConfig>,
}

impl WriterServer {
    /// Starts the cluster (a few seconds: initdb and start).
    pub async fn start(stack: &Stack) -> Self {
        let server = PrivatePostgres::start_with(stack, free_port(), "log_connections = on\n", HBA);
        server
            .admin_sql(
                stack,
                "CREATE ROLE cleartext_login NOLOGIN; CREATE ROLE md5_login NOLOGIN",
            )
            .await;
        WriterServer {
            host: "127.0.0.1".into(),
            port: server.port,
            server,
            tls: stack.tls.clone(),
        }
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
        self.server
            .admin_sql_with(
                &self.tls,
                &format!(
                    "CREATE ROLE {} WITH LOGIN {options} PASSWORD {}",
                    escape_identifier(name),
                    escape_literal(&stored)
                ),
            )
            .await;
        password
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.server.log()
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

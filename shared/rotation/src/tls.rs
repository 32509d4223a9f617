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

/// Amazon RDS and RDS Proxy CA certificates: every commercial Region's (those AWS published by
/// 2025, ap-southeast-7 and mx-central-1 included) and GovCloud's, built by
/// `scripts/update-rds-ca-bundle.sh` from pinned sources (the China Regions' bundles are not in
/// it: docs/runbook.md#the-rds-ca-bundle).
pub const RDS_CA_BUNDLE: &str = include_str!("../certs/rds-ca-bundle.pem");

/// The certificates of [`RDS_CA_BUNDLE`].
pub fn rds_certificates() -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(RDS_CA_BUNDLE.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| RotationError::Config(format!("the built-in RDS CA bundle is invalid: {e}")))
}

/// Makes aws-lc-rs the process's TLS provider, for every TLS client that takes the default
/// (database drivers, the AWS SDK); once is enough, later calls change nothing.
pub fn install_default_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Builds the rustls client configuration used for every verified database connection.
///
/// Certificates and host names are verified (PostgreSQL's `verify-full`): the server's
/// certificate must chain to a trusted root and name the host the secret gives.
pub fn client_config(extra_ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let roots = root_store(extra_ca_file)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RotationError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The trust store of every verified database connection: the system roots, the Amazon RDS
/// bundle and the certificates of `extra_ca_file`.
pub fn root_store(extra_ca_file: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(rds_certificates()?);
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
    Ok(roots)
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
        let certs = rds_certificates().unwrap();
        assert!(certs.len() > 100, "{}", certs.len());
        client_config(None).unwrap();
    }

    /// The certificates of one `# source` section of the bundle, and the count its header
    /// records.
    fn sections() -> Vec<(String, usize, Vec<CertificateDer<'static>>)> {
        let mut sections = Vec::new();
        for part in RDS_CA_BUNDLE.split("\n# source ").skip(1) {
            let (header, pem) = part.split_once('\n').unwrap();
            let (name, rest) = header.split_once(':').unwrap();
            let recorded = rest
                .split(", ")
                .find_map(|field| field.split_once(" certificates"))
                .and_then(|(n, _)| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no certificate count in the header of {name}"));
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<std::result::Result<Vec<_>, _>>()
                .unwrap();
            sections.push((name.to_owned(), recorded, certs));
        }
        sections
    }

    #[test]
    fn the_bundle_holds_what_the_update_script_recorded() {
        let sections = sections();
        let names: Vec<&str> = sections.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "commercial-global",
                "commercial-2025-regions",
                "us-gov-global",
                "rds-proxy-roots"
            ]
        );
        for (name, recorded, certs) in &sections {
            assert_eq!(certs.len(), *recorded, "source {name}");
        }
        let total: usize = sections.iter().map(|(_, n, _)| n).sum();
        assert_eq!(total, rds_certificates().unwrap().len());
        assert!(RDS_CA_BUNDLE.contains(&format!("certificates, {total} in all")));
        assert_eq!(
            sections.iter().map(|(_, n, _)| *n).collect::<Vec<_>>(),
            [121, 15, 10, 5],
            "counts per source changed: rerun scripts/update-rds-ca-bundle.sh and update this test and docs/runbook.md"
        );
    }

    /// Verifies `cert`'s signature with its own public key: a root CA that is exactly what
    /// its issuer (itself) signed.
    fn self_signature_verifies(cert: &x509_cert::Certificate) -> bool {
        use aws_lc_rs::signature;
        use x509_cert::der::Encode;
        let tbs = cert.tbs_certificate.to_der().unwrap();
        let key = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let algorithm: &dyn signature::VerificationAlgorithm =
            match cert.signature_algorithm.oid.to_string().as_str() {
                "1.2.840.113549.1.1.11" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "1.2.840.113549.1.1.12" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "1.2.840.10045.4.3.3" => &signature::ECDSA_P384_SHA384_ASN1,
                other => panic!("unexpected signature algorithm {other}"),
            };
        let signature = cert.signature.raw_bytes();
        signature::UnparsedPublicKey::new(algorithm, key)
            .verify(&tbs, signature)
            .is_ok()
    }

    #[test]
    fn recently_added_regions_have_their_root_cas_in_the_trust_store() {
        use x509_cert::der::{Decode, Encode};
        let store = root_store(None).unwrap();
        let mut parsed = Vec::new();
        for der in rds_certificates().unwrap() {
            parsed.push(x509_cert::Certificate::from_der(der.as_ref()).unwrap());
        }
        let regions = [
            "ap-southeast-7",
            "mx-central-1",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-east-2",
            "il-central-1",
            "ca-west-1",
            "us-gov-west-1",
            "us-gov-east-1",
            "eu-west-1",
        ];
        for region in regions {
            for kind in ["RSA2048 G1", "RSA4096 G1", "ECC384 G1"] {
                let cn = format!("CN=Amazon RDS {region} Root CA {kind}");
                let cert = parsed
                    .iter()
                    .find(|c| c.tbs_certificate.subject.to_string().contains(&cn))
                    .unwrap_or_else(|| panic!("no {cn} in the RDS bundle"));
                assert_eq!(
                    cert.tbs_certificate.subject, cert.tbs_certificate.issuer,
                    "{cn} is a root"
                );
                assert!(
                    self_signature_verifies(cert),
                    "{cn}: its signature does not verify"
                );
                // A trust anchor holds the subject Name's contents, without its SEQUENCE header.
                let subject = cert.tbs_certificate.subject.to_der().unwrap();
                assert!(
                    store.roots.iter().any(|a| {
                        let anchor = a.subject.as_ref();
                        subject.ends_with(anchor) && subject.len() - anchor.len() <= 4
                    }),
                    "{cn} is not a trust anchor of the database connections"
                );
            }
        }
        // The check is live: a root whose signed part is changed no longer verifies.
        let mut forged = parsed
            .iter()
            .find(|c| {
                c.tbs_certificate
                    .subject
                    .to_string()
                    .contains("ap-southeast-7")
            })
            .unwrap()
            .clone();
        forged.tbs_certificate.serial_number =
            x509_cert::serial_number::SerialNumber::new(&[1, 2, 3]).unwrap();
        assert!(!self_signature_verifies(&forged));
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

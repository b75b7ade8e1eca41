//! The root certificates every outbound TLS connection trusts: the AWS SDK's (DynamoDB, SQS,
//! S3, Secrets Manager, SSM) and the providers' HTTPS client.
//!
//! By default they are Mozilla's bundle compiled into the binary (`webpki-root-certs`, kept by
//! the rustls project), because reading the system store is the largest single cost of a cold
//! start: each client scanned the certificate directory on its own, twice per init.
//! `TLS_ROOTS=system` trusts the platform's store instead, for a deployment whose outbound
//! traffic passes a private CA (a TLS-inspecting proxy); it costs those scans again.

use crate::config::{err, ConfigError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use base64::Engine;
use std::sync::Arc;

/// Which roots outbound TLS trusts (`TLS_ROOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// Mozilla's bundle, compiled in: no file is read at start.
    #[default]
    Bundled,
    /// The platform's certificate store, read at start.
    System,
}

impl TlsRoots {
    /// `TLS_ROOTS`: unset or `bundled`, or `system`.
    pub fn from_var(value: Option<&str>) -> Result<Self, ConfigError> {
        match value.map(str::trim) {
            None | Some("") | Some("bundled") => Ok(TlsRoots::Bundled),
            Some("system") => Ok(TlsRoots::System),
            Some(other) => Err(err(
                "TLS_ROOTS",
                format!("{other:?} is not one of bundled, system"),
            )),
        }
    }

    /// The providers' rustls client configuration (aws-lc-rs, TLS 1.2 and 1.3).
    pub fn rustls_config(self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        match self {
            TlsRoots::Bundled => {
                roots.add_parsable_certificates(
                    webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned(),
                );
            }
            TlsRoots::System => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err(format!("no usable root certificates ({self:?})"));
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }

    /// Gives the AWS SDK's configuration its HTTPS client: unchanged for the system store
    /// (the SDK's default client reads it); for the bundle, a client trusting the same
    /// certificates as PEM, the only form the SDK's trust store accepts besides the system's.
    pub fn sdk_loader(
        self,
        loader: aws_config::ConfigLoader,
    ) -> Result<aws_config::ConfigLoader, String> {
        match self {
            TlsRoots::System => Ok(loader),
            TlsRoots::Bundled => {
                let store = TrustStore::empty()
                    .with_native_roots(false)
                    .with_pem_certificate(bundle_pem());
                let context = TlsContext::builder()
                    .with_trust_store(store)
                    .build()
                    .map_err(|e| format!("AWS SDK TLS set-up: {e}"))?;
                let client = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
                    .tls_context(context)
                    .build_https();
                Ok(loader.http_client(client))
            }
        }
    }
}

/// Every bundled root as one PEM document.
fn bundle_pem() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = Vec::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2_000);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let text = b64.encode(cert.as_ref());
        for line in text.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    #[test]
    fn the_setting_is_bundled_unless_system_and_names_the_bad_value() {
        assert_eq!(TlsRoots::from_var(None).unwrap(), TlsRoots::Bundled);
        assert_eq!(TlsRoots::from_var(Some("")).unwrap(), TlsRoots::Bundled);
        assert_eq!(
            TlsRoots::from_var(Some("bundled")).unwrap(),
            TlsRoots::Bundled
        );
        assert_eq!(
            TlsRoots::from_var(Some("system")).unwrap(),
            TlsRoots::System
        );
        let e = TlsRoots::from_var(Some("native")).unwrap_err();
        assert_eq!(e.name, "TLS_ROOTS");
        assert!(e.problem.contains("\"native\""), "{}", e.problem);
    }

    #[test]
    fn the_pem_bundle_round_trips_to_the_same_certificates() {
        let pem = bundle_pem();
        let back: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(back.len() > 100, "{} roots", back.len());
        assert_eq!(back.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        for (a, b) in back.iter().zip(webpki_root_certs::TLS_SERVER_ROOT_CERTS) {
            assert_eq!(a.as_ref(), b.as_ref());
        }
        // Every one is a usable trust anchor, as the SDK's store will require.
        let mut store = rustls::RootCertStore::empty();
        let (ok, bad) = store.add_parsable_certificates(back);
        assert_eq!(bad, 0);
        assert!(ok > 100);
    }

    #[test]
    fn the_bundled_client_configuration_trusts_the_bundle() {
        let c = TlsRoots::Bundled.rustls_config().unwrap();
        assert!(c.alpn_protocols.is_empty());
    }
}

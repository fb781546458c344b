//! Test certificates (rcgen) and a TLS client configuration that trusts them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

/// A generated certificate for `localhost` and its files.
pub struct TestCert {
    /// PEM certificate file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
    der: CertificateDer<'static>,
}

impl TestCert {
    /// Generates a self-signed certificate for `localhost` into `dir`.
    pub fn generate(dir: &Path) -> TestCert {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        TestCert {
            cert,
            key,
            der: ck.cert.der().clone(),
        }
    }

    /// A client configuration trusting only this certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// `[tls]` lines for a configuration.
    pub fn config(&self) -> String {
        format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }
}

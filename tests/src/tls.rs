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

/// A test certificate authority and leaf certificates it issues.
pub struct TestCa {
    /// The CA certificate file (PEM), for `[outbound] ca_file`.
    pub ca_file: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl TestCa {
    /// A new CA, its certificate written into `dir`.
    pub fn new(dir: &Path) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Laneway Test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        TestCa {
            ca_file,
            issuer: rcgen::Issuer::new(params, key),
            dir: dir.to_path_buf(),
        }
    }

    /// A server configuration with a certificate for `name` issued by this CA.
    pub fn server_config(&self, name: &str) -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let _ = &self.dir;
        server_config(cert.der().clone(), key.serialize_der())
    }
}

/// A rustls server configuration from a certificate and a PKCS#8 key.
pub fn server_config(cert: CertificateDer<'static>, key: Vec<u8>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key =
        rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(key));
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap(),
    )
}

/// A self-signed server configuration for `name` (trusted by nobody).
pub fn self_signed_server(name: &str) -> Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    server_config(ck.cert.der().clone(), ck.signing_key.serialize_der())
}

/// A server that requires a client certificate: every handshake with a
/// client that has none fails (to test fallbacks).
pub fn client_auth_server(name: &str) -> Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap(),
    )
}

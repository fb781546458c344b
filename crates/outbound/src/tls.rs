//! Outbound TLS client configurations (rustls, TLS 1.2+): one that checks
//! nothing but the handshake signature (opportunistic and `required` mode,
//! RFC 7435), one that verifies the certificate chain and name against the
//! WebPKI roots plus `[outbound] ca_file` (`verify` mode).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The handshake-signature half of a [`ServerCertVerifier`]: rustls's own
/// checks against the algorithms `$algs` (every verifier here only differs
/// in how it judges the certificate).
macro_rules! signature_checks {
    ($self:ident => $algs:expr) => {
        fn verify_tls12_signature(
            &$self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, $algs)
        }

        fn verify_tls13_signature(
            &$self,
            message: &[u8],
            cert: &rustls_pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, $algs)
        }

        fn supported_verify_schemes(&$self) -> Vec<rustls::SignatureScheme> {
            $algs.supported_schemes()
        }
    };
}
pub(crate) use signature_checks;

/// Accepts any certificate but still checks that the server holds its key.
#[derive(Debug)]
struct AnyCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    signature_checks!(self => &self.0);
}

/// The client configurations outbound connections use.
#[derive(Clone)]
pub struct TlsClients {
    /// No certificate checks (opportunistic, `required`).
    pub any: Arc<ClientConfig>,
    /// WebPKI roots plus `ca_file`, names checked (`verify`).
    pub verified: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClients")
    }
}

impl TlsClients {
    /// Builds both configurations; `ca_file` adds trust anchors.
    pub fn new(ca_file: Option<&Path>) -> Result<TlsClients, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algs = provider.signature_verification_algorithms;
        let any = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(algs)))
            .with_no_client_auth();
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("[outbound] ca_file {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("[outbound] ca_file {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("[outbound] ca_file {}: {e}", path.display()))?;
            }
        }
        let verified = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClients {
            any: Arc::new(any),
            verified: Arc::new(verified),
        })
    }
}

//! What the SMTP front door needs from the configuration, prepared once
//! (TLS keys loaded, users indexed) and swapped as a whole on SIGHUP, so
//! that a reload changes certificates and relay policy without dropping a
//! connection: each session reads the current settings per command.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use laneway_common::Config;
use laneway_common::config::{Listener, Relay, SmtpUser};
use laneway_common::priority::Priority;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::Users;

/// Errors preparing the settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The TLS certificate or key could not be loaded.
    #[error("[tls] {0}")]
    Tls(String),
    /// A user's password hash is unusable.
    #[error("[[smtp_user]] {0:?}: password_hash: {1}")]
    User(String, String),
}

/// The SMTP front door's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our host name (greeting, EHLO, `Received:`).
    pub hostname: String,
    /// Relay policy.
    pub relay: Relay,
    /// SMTP AUTH users.
    pub users: Users,
    /// The TLS server configuration, when `[tls]` is set.
    pub tls: Option<Arc<ServerConfig>>,
    /// Lane for mail that names none.
    pub default_priority: Priority,
    /// Per-listener settings by name.
    pub listeners: HashMap<String, Listener>,
    /// Extra local domains (bounce domains) anyone may send to.
    pub extra_local_domains: Vec<String>,
}

impl Settings {
    /// Prepares the settings of `config`, loading TLS material.
    pub fn new(config: &Config) -> Result<Settings, SettingsError> {
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(load_tls(&t.cert, &t.key)?)),
            None => None,
        };
        for u in &config.smtp_users {
            check_user(u)?;
        }
        let extra_local_domains = config
            .domains
            .iter()
            .filter_map(|d| d.bounce_domain.clone())
            .chain(config.auth.default_bounce_domain.clone())
            .map(|d| d.to_ascii_lowercase())
            .collect();
        Ok(Settings {
            hostname: config.server.hostname.clone(),
            relay: config.relay.clone(),
            users: Users::new(&config.smtp_users),
            tls,
            default_priority: config.queue.default_priority,
            listeners: config
                .listeners
                .iter()
                .map(|l| (l.name.clone(), l.clone()))
                .collect(),
            extra_local_domains,
        })
    }

    /// Whether anyone may send to `domain`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        crate::policy::is_local_domain(domain, &self.relay.local_domains)
            || crate::policy::is_local_domain(domain, &self.extra_local_domains)
    }
}

fn check_user(u: &SmtpUser) -> Result<(), SettingsError> {
    crate::auth::check_hash(&u.password_hash).map_err(|e| SettingsError::User(u.name.clone(), e))
}

/// Loads a PEM certificate chain and private key into a rustls server
/// configuration (TLS 1.2 and 1.3 only, rustls' safe defaults).
pub fn load_tls(cert: &Path, key: &Path) -> Result<ServerConfig, SettingsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| SettingsError::Tls(format!("cert {}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| SettingsError::Tls(format!("cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(SettingsError::Tls(format!(
            "cert {}: no certificate in the file",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| SettingsError::Tls(format!("key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SettingsError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| SettingsError::Tls(format!("cert and key do not match: {e}")))
}

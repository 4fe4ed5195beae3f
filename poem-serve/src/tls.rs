//! [`ReloadingTls`]: TLS from PEM files that are reloaded when they change.
//!
//! ```no_run
//! use std::time::Duration;
//! use poem_serve::{ReloadingTls, StreamServer};
//!
//! # async fn serve(app: poem::Route) -> Result<(), Box<dyn std::error::Error>> {
//! let tls = ReloadingTls::from_pem_files("certs/cert.pem", "certs/key.pem")?
//!     .poll_interval(Duration::from_secs(5));
//! StreamServer::bind("0.0.0.0:443").await?.tls(tls).run(app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ALPN offers `h2`, then `http/1.1`. The server checks the files' modification time and length
//! every poll interval; a certificate renewed in place (by certbot, say) is served to new
//! handshakes within that interval, and open connections keep theirs.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Why TLS could not be set up from certificate files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("can not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    /// The key file holds no usable PEM private key.
    #[error("{} holds no usable PEM private key: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A TLS configuration read from PEM files and reloaded when they change.
///
/// Every new handshake uses the certificate that was current when it began; connections already
/// open keep theirs, so replacing the files never drops a stream. A pair that does not load (a key
/// written after its certificate, say) is logged and retried at the next check; the previous
/// certificate stays in use meanwhile.
#[derive(Clone)]
pub struct ReloadingTls {
    resolver: Arc<ReloadingCert>,
    config: Arc<rustls::ServerConfig>,
    poll: Duration,
}

impl ReloadingTls {
    /// Loads the certificate chain from `cert` and the private key from `key` (both PEM).
    ///
    /// # Errors
    /// A missing or unreadable file, a file without a certificate or key, or a key that does not
    /// match the certificate.
    pub fn from_pem_files(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let stamp = FileStamp::of(&cert, &key);
        let current = load_certified_key(&cert, &key)?;
        let resolver = Arc::new(ReloadingCert {
            current: RwLock::new(Arc::new(current)),
            stamp: Mutex::new(stamp),
            cert,
            key,
        });
        // aws-lc-rs offers the post-quantum hybrid key exchange that ring's provider lacks.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            resolver,
            config: Arc::new(config),
            poll: Duration::from_secs(2),
        })
    }

    /// How often the files' modification times are checked (default 2 s).
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// Reloads the files now if they changed since the last load. Returns whether the certificate
    /// in use changed.
    ///
    /// # Errors
    /// When the changed files do not load; the previous certificate stays in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        self.resolver.reload_if_changed()
    }

    /// The rustls configuration (certificate resolver and ALPN), for use with another server.
    #[must_use]
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// Checks the files every poll interval until `stop` is cancelled.
    pub(crate) async fn watch(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                () = stop.cancelled() => return,
            }
            let tls = self.clone();
            match tokio::task::spawn_blocking(move || tls.reload_if_changed()).await {
                Ok(Ok(true)) => tracing::info!(
                    cert = %self.resolver.cert.display(),
                    "TLS certificate reloaded: new handshakes use it"
                ),
                Ok(Ok(false)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(%err, "TLS certificate not reloaded: keeping the previous one")
                }
                Err(err) => tracing::warn!(%err, "TLS certificate reload task failed"),
            }
        }
    }
}

impl fmt::Debug for ReloadingTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingTls")
            .field("cert", &self.resolver.cert)
            .field("key", &self.resolver.key)
            .field("poll", &self.poll)
            .finish()
    }
}

/// The certificate resolver behind [`ReloadingTls`].
#[derive(Debug)]
struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamp when `current` was loaded; a pair that failed to load leaves it as it
    /// was, so the next check tries again.
    stamp: Mutex<FileStamp>,
    cert: PathBuf,
    key: PathBuf,
}

impl ReloadingCert {
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamp = FileStamp::of(&self.cert, &self.key);
        if *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) == stamp {
            return Ok(false);
        }
        let loaded = load_certified_key(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// Modification time and length of the certificate and key files (`None` when unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp([Option<(SystemTime, u64)>; 2]);

impl FileStamp {
    fn of(cert: &Path, key: &Path) -> Self {
        let stamp = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        Self([stamp(cert), stamp(key)])
    }
}

fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| TlsError::Key {
        path: key_path.to_owned(),
        reason: err.to_string(),
    })?;
    let signing_key =
        rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).map_err(|err| TlsError::Key {
            path: key_path.to_owned(),
            reason: err.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        // `Unknown` (the key can not tell its public half) is not a mismatch.
        _ => Ok(certified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_certificate_files_are_a_clear_error() {
        let err = ReloadingTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("can not read /nonexistent/cert.pem"),
            "{err}"
        );
    }
}

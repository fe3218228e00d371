//! TLS on the client port (rustls): the certificate chain and key from two PEM files, reloaded
//! without a restart. A reload (SIGHUP, or the files' modification times changing) builds the new
//! pair first and swaps it in only if it is valid: new handshakes get it, connections already open
//! keep theirs, and a broken renewal leaves the running certificate in place (and says why).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why a certificate pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no PEM certificate in {0}")]
    NoCertificate(PathBuf),
    #[error("no PEM private key in {0}")]
    NoKey(PathBuf),
    #[error("TLS key {key} is not the key of certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot use TLS key {key} with certificate {cert}: {source}")]
    Invalid {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// The pair new handshakes get.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.read()))
    }
}

pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
    /// The files' modification times at the last load.
    loaded: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads and checks a pair: the chain's first certificate must belong to the key.
fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read("certificate", cert)?)
            .filter_map(Result::ok)
            .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let private = PrivateKeyDer::from_pem_slice(&read("key", key)?)
        .map_err(|_| TlsError::NoKey(key.to_owned()))?;
    let invalid = |source| match source {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::Mismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }
        }
        source => TlsError::Invalid {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        },
    };
    // Checks that the chain's first certificate holds the key's public half (when it can tell).
    CertifiedKey::from_der(chain, private, &provider()).map_err(invalid)
}

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pair = load_pair(cert, key)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(pair))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Invalid {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // The server speaks HTTP/1.1 only (WebSocket upgrades need it).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            loaded: Mutex::new((modified(cert), modified(key))),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Loads the files again and swaps the pair in if it is valid; `force` even when the files'
    /// times have not changed (SIGHUP). Returns whether a new pair is in use.
    pub fn reload(&self, force: bool) -> Result<bool, TlsError> {
        let times = (modified(&self.cert), modified(&self.key));
        {
            let mut loaded = self.loaded.lock();
            if !force && *loaded == times {
                return Ok(false);
            }
            // Tried once per change: a broken renewal is reported once, not every poll.
            *loaded = times;
        }
        let pair = load_pair(&self.cert, &self.key)?;
        *self.current.0.write() = Arc::new(pair);
        Ok(true)
    }
}

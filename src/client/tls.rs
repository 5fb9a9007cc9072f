//! TLS for `https://` targets: whom to trust and how a connection is wrapped.
//!
//! Trust is Mozilla's root certificates ([`webpki_roots`], compiled in, no OS trust store)
//! plus the certificates of an optional CA bundle (a PEM file, for servers behind a private
//! CA or a self-signed certificate). There is no switch that skips verification: a server
//! whose certificate does not verify fails every request with a TLS failure.
//!
//! The crypto provider is `ring` (no cmake or assembler beyond a C compiler). Protocol
//! versions are rustls's safe defaults (TLS 1.3 and 1.2).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Error;

/// The setting a bad CA bundle is reported under.
const CA_FILE: &str = "SEMANTIC_CA_FILE";

/// The TLS settings of every connection: webpki roots plus the certificates of `ca_file`,
/// no ALPN (each path sets its own), no client certificate.
///
/// # Errors
///
/// [`Error::Io`] when `ca_file` cannot be read; [`Error::InvalidConfig`] naming
/// `SEMANTIC_CA_FILE` when it holds no certificate or one that is not a CA certificate
/// rustls can use.
pub(crate) fn config(ca_file: Option<&Path>) -> crate::Result<ClientConfig> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for cert in read_bundle(path)? {
            roots.add(cert).map_err(|e| Error::InvalidConfig {
                field: CA_FILE,
                reason: format!("{}: {e}", path.display()),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig {
            field: "tls",
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The certificates of a PEM bundle (other PEM sections, such as keys, are skipped).
fn read_bundle(path: &Path) -> crate::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidConfig {
            field: CA_FILE,
            reason: format!("{}: {e}", path.display()),
        })?;
    if certs.is_empty() {
        return Err(Error::InvalidConfig {
            field: CA_FILE,
            reason: format!("{}: no PEM certificate in the file", path.display()),
        });
    }
    Ok(certs)
}

/// How one `https://` endpoint's connections are wrapped: the connector (ALPN `http/1.1`
/// only, the workers speak nothing else) and the name the certificate must carry.
#[derive(Clone)]
pub(crate) struct Tls {
    connector: TlsConnector,
    /// SNI and the name verified against the certificate: the URL's host.
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish()
    }
}

impl Tls {
    /// TLS to `host` (a DNS name or an IP address, IPv6 with or without brackets).
    ///
    /// # Errors
    ///
    /// The reason `host` is no name a certificate can carry.
    pub(crate) fn new(config: &ClientConfig, host: &str) -> Result<Self, String> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare.to_owned())
            .map_err(|e| format!("{host:?} is no TLS server name: {e}"))?;
        let mut config = config.clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    /// The TLS handshake over `stream`.
    pub(crate) async fn connect(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), stream).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(config(Some(&missing)), Err(Error::Io { .. })));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = config(Some(&empty)).unwrap_err();
        assert!(err.to_string().contains("SEMANTIC_CA_FILE"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = config(Some(&garbage)).unwrap_err();
        assert!(err.to_string().contains("SEMANTIC_CA_FILE"), "{err}");
    }

    #[test]
    fn webpki_roots_are_trusted_by_default() {
        assert!(config(None).is_ok());
    }
}

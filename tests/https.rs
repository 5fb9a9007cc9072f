//! Ungated, seconds: `https://` targets. A small TLS server on loopback (a self-signed
//! certificate for `localhost` and `127.0.0.1`) answers `POST /v1/messages`; the harness
//! reaches it when the certificate is trusted through the CA file, and records every request
//! as a TLS failure, without panicking or hanging, when it is not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use semantic_stress::anthropic::{Message, MessagesRequest};
use semantic_stress::{
    MetricsCollector, Outcome, Request, RequestResult, StressConfig, StressHarness,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

const REPLY: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"test-model","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}"#;

/// The TLS test server: its address, its CA file (the self-signed certificate, PEM), the
/// number of requests it answered and of connections that negotiated ALPN `http/1.1`.
struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    answered: Arc<AtomicUsize>,
    alpn_http1: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Server {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed certificate");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, certified.cert.pem()).expect("write CA file");
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let answered = Arc::new(AtomicUsize::new(0));
    let alpn_http1 = Arc::new(AtomicUsize::new(0));
    let (count, alpn) = (answered.clone(), alpn_http1.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, count, alpn) = (acceptor.clone(), count.clone(), alpn.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate aborts here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if tls.get_ref().1.alpn_protocol() == Some(b"http/1.1") {
                    alpn.fetch_add(1, Ordering::Relaxed);
                }
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let count = count.clone();
                    async move {
                        let path = request.uri().path().to_owned();
                        let _ = request.into_body().collect().await;
                        if path == "/v1/messages" {
                            let n = count.fetch_add(1, Ordering::Relaxed);
                            // Every reply has its own id: a repeated one is a stale reply.
                            let reply = REPLY.replace("msg_1", &format!("msg_{n}"));
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(reply)))
                        } else {
                            hyper::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::new()))
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Server {
        addr,
        _dir: dir,
        ca_file,
        answered,
        alpn_http1,
        task,
    }
}

fn message() -> Request {
    Request::messages(&MessagesRequest::new(
        "test-model",
        vec![Message::user("hello over tls")],
        16,
    ))
}

fn config(url: String) -> StressConfig {
    StressConfig::new(url)
        .workers(3)
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
}

async fn run(harness: &StressHarness, n: usize) -> Vec<RequestResult> {
    tokio::time::timeout(
        Duration::from_secs(30),
        harness.run_concurrent_requests(&message(), Some(n)),
    )
    .await
    .expect("the run ends within its bounds")
    .expect("valid load")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_certificate_carries_every_request() {
    let server = start().await;
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{}", server.addr.port());
        let harness = StressHarness::new(config(url).ca_file(&server.ca_file)).expect("config");
        let before = server.answered.load(Ordering::Relaxed);
        let results = run(&harness, 12).await;
        assert_eq!(results.len(), 12, "one record per request");
        let m = MetricsCollector::analyze(&results);
        assert_eq!(m.successful, 12, "{host}: {:?}", results[0].error);
        // Bytes are counted above TLS too: every request written whole, every reply read.
        for r in &results {
            let u = r
                .connection
                .as_ref()
                .expect("a worker request records its connection");
            assert!(u.request_written && u.response_bytes > 0, "{u:?}");
        }
        assert_eq!(server.answered.load(Ordering::Relaxed) - before, 12);

        // The shared pool (single requests) speaks TLS too.
        let single = harness.client().send(&message(), Instant::now()).await;
        assert_eq!(single.outcome, Outcome::Success, "{:?}", single.error);
    }
    assert!(
        server.alpn_http1.load(Ordering::Relaxed) >= 1,
        "the workers' connections offer ALPN http/1.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_every_request_as_tls() {
    let server = start().await;
    let url = format!("https://localhost:{}", server.addr.port());
    let harness = StressHarness::new(config(url)).expect("config");
    let started = Instant::now();
    let results = run(&harness, 9).await;
    assert_eq!(results.len(), 9, "one record per request");
    for r in &results {
        assert_eq!(r.outcome, Outcome::Connect, "{:?}", r.error);
        let error = r.error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("tls handshake failed") && error.contains("certificate"),
            "{error}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no request waited"
    );
    assert_eq!(server.answered.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_peer_fails_within_the_connect_timeout() {
    // Accepts TCP and never answers the TLS client hello.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let connect_timeout = Duration::from_millis(300);
    let harness = StressHarness::new(
        config(format!("https://127.0.0.1:{port}")).connect_timeout(connect_timeout),
    )
    .expect("config");
    let results = run(&harness, 3).await;
    hold.abort();
    assert_eq!(results.len(), 3, "one record per request");
    for r in &results {
        let error = r.error.as_deref().unwrap_or_default();
        assert!(error.starts_with("tls handshake failed"), "{error}");
        assert_eq!(r.outcome, Outcome::Connect);
        let took = r.finished_at - r.started_at;
        assert!(
            took >= connect_timeout && took < Duration::from_secs(2),
            "bounded by the connect timeout, not the request timeout: {took:?}"
        );
    }
}

#[test]
fn a_bad_ca_file_is_refused_when_the_harness_is_built() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "no certificate here\n").expect("write");
    let err = StressHarness::new(StressConfig::new("https://localhost:1").ca_file(&path))
        .expect_err("a CA file without certificates is refused");
    assert!(err.to_string().contains("SEMANTIC_CA_FILE"), "{err}");
    let err = StressHarness::new(
        StressConfig::new("https://localhost:1").ca_file(dir.path().join("missing.pem")),
    )
    .expect_err("a missing CA file is refused");
    assert!(matches!(err, semantic_stress::Error::Io { .. }), "{err}");
}

//! The network side of the simulation: the kube-apiserver's HTTPS endpoint (served by the
//! stand-in kubelet), port holders for the other components, and the HTTPS client kubeadm and
//! kubectl use, which checks the server as client-go does.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTP response.
pub struct Response {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
}

/// A request handler: method and path → response.
pub type Handler = Arc<dyn Fn(&str, &str) -> Response + Send + Sync>;

/// A listener running on its own thread until stopped.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub addr: SocketAddr,
}

impl Server {
    pub fn stop(mut self) {
        self.halt();
    }
    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    on_conn: impl Fn(TcpStream) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = listener.set_nonblocking(true);
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    on_conn(s)
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })
}

/// Binds a port and accepts and closes connections (a component that listens).
pub fn hold_port(addr: SocketAddr) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = accept_loop(listener, stop.clone(), drop);
    Ok(Server {
        stop,
        thread: Some(thread),
        addr,
    })
}

/// Serves HTTPS with a certificate chain and key (PEM), a thread per connection; a client
/// that connects and sends nothing is dropped after a few seconds.
pub fn serve_https(
    addr: SocketAddr,
    cert_pem: &str,
    key_pem: &str,
    handler: Handler,
) -> Result<Server, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unable to load server certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("unable to load server key: {e}"))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind(addr).map_err(|e| {
        format!(
            "failed to listen on {addr}: listen tcp {addr}: bind: {}",
            crate::util_io_text(&e)
        )
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = accept_loop(listener, stop.clone(), move |tcp| {
        let cfg = cfg.clone();
        let handler = handler.clone();
        std::thread::spawn(move || {
            let _ = handle_conn(tcp, cfg, handler);
        });
    });
    Ok(Server {
        stop,
        thread: Some(thread),
        addr,
    })
}

fn handle_conn(
    tcp: TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    handler: Handler,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16_384 {
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut first = head.lines().next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or("GET").to_string();
    let target = first.next().unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    let r = handler(&method, &path);
    let reason = match r.status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let msg = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        r.status,
        r.content_type,
        r.body.len(),
        r.body
    );
    tls.write_all(msg.as_bytes())?;
    tls.flush()?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}

/// How a client checks the server.
#[derive(Clone, Copy)]
pub enum Verify<'a> {
    /// Against this CA (PEM), host name included, as client-go does.
    Ca(&'a str),
    /// Not at all: token discovery fetches cluster-info this way, then checks the CA pin.
    Insecure,
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens, the name does not resolve, or the connection timed out.
    Connect(String),
    /// The TLS handshake failed (certificate not trusted, wrong name, ...).
    Tls(String),
    /// Anything after the handshake.
    Other(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(s) | ClientError::Tls(s) | ClientError::Other(s) => f.write_str(s),
        }
    }
}

/// `https://host:port` → (host, port).
pub fn parse_server(url: &str) -> Result<(String, u16), ClientError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| ClientError::Other(format!("unsupported server URL {url:?}")))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let (h, p) = crate::api::split_host_port(hostport);
    let port = if hostport.contains(':') && !hostport.starts_with('[') || hostport.contains("]:") {
        p
    } else {
        443
    };
    Ok((h, port))
}

/// GET `path` on `server` (`https://host:port`) over TLS. Returns the status, the body and the
/// server's certificate chain (PEM).
pub fn https_get(
    server: &str,
    path: &str,
    verify: Verify,
    timeout: Duration,
) -> Result<(u16, String, Vec<String>), ClientError> {
    let (host, port) = parse_server(server)?;
    let hostport = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let addrs: Vec<SocketAddr> = hostport
        .to_socket_addrs()
        .map_err(|_| ClientError::Connect(format!("dial tcp: lookup {host}: no such host")))?
        .collect();
    let mut tcp = None;
    let mut last = String::new();
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => {
                last = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => {
                        format!("dial tcp {a}: connect: connection refused")
                    }
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                        format!("dial tcp {a}: i/o timeout")
                    }
                    _ => format!("dial tcp {a}: connect: {}", crate::util_io_text(&e)),
                }
            }
        }
    }
    let tcp = tcp.ok_or(ClientError::Connect(last))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    tcp.set_write_timeout(Some(timeout)).ok();
    let p = provider();
    let builder = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Other(e.to_string()))?;
    let cfg = match verify {
        Verify::Ca(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()).flatten() {
                let _ = roots.add(c);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(p)))
            .with_no_client_auth(),
    };
    let name = ServerName::try_from(host.clone())
        .map_err(|e| ClientError::Other(format!("invalid server name {host}: {e}")))?;
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name)
        .map_err(|e| ClientError::Other(e.to_string()))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: kubeforge-standin\r\nAccept: application/json, */*\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = tls.write_all(req.as_bytes()).and_then(|_| tls.flush()) {
        return Err(tls_error(&e, &host));
    }
    let mut resp = Vec::new();
    if let Err(e) = tls.read_to_end(&mut resp)
        && resp.is_empty()
    {
        return Err(tls_error(&e, &host));
    }
    let chain: Vec<String> = tls
        .conn
        .peer_certificates()
        .map(|cs| cs.iter().map(|c| der_to_pem(c.as_ref())).collect())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&resp).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string(), chain))
}

fn tls_error(e: &std::io::Error, host: &str) -> ClientError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let why = match c {
                rustls::CertificateError::UnknownIssuer
                | rustls::CertificateError::BadSignature => {
                    "x509: certificate signed by unknown authority".to_string()
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    format!("x509: certificate is not valid for {host}")
                }
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => {
                    "x509: certificate has expired or is not yet valid".to_string()
                }
                other => format!("x509: {other:?}"),
            };
            ClientError::Tls(format!("tls: failed to verify certificate: {why}"))
        }
        Some(other) => ClientError::Tls(format!("remote error: tls: {other}")),
        None => match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                ClientError::Connect("EOF".into())
            }
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                ClientError::Connect("net/http: TLS handshake timeout".into())
            }
            _ => ClientError::Other(e.to_string()),
        },
    }
}

/// PEM of a DER certificate.
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A plain-HTTP GET (the kubelet's healthz on 10248); `None` when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Serves plain HTTP (the kubelet's healthz endpoint).
pub fn serve_http(addr: SocketAddr, handler: Handler) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = accept_loop(listener, stop.clone(), move |mut tcp| {
        let handler = handler.clone();
        std::thread::spawn(move || {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let n = tcp.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let r = handler("GET", &path);
            let _ = tcp.write_all(
                format!(
                    "HTTP/1.1 {} OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    r.status,
                    r.content_type,
                    r.body.len(),
                    r.body
                )
                .as_bytes(),
            );
        });
    });
    Ok(Server {
        stop,
        thread: Some(thread),
        addr,
    })
}

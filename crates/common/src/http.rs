//! The one HTTP client of Laneway: hyper's HTTP/1.1 client over TCP, TLS
//! (rustls) or a Unix socket, used for everything Laneway fetches or calls
//! — the `laneway queue` control client, MTA-STS policy fetches, webhooks,
//! the benchmark's API load and the tests. Every exchange has a deadline
//! and a cap on the body it reads; redirects are never followed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

/// Where a request goes.
#[derive(Clone)]
pub enum Endpoint {
    /// Plain HTTP over TCP.
    Tcp(SocketAddr),
    /// Plain HTTP over a Unix socket (the daemon's control socket).
    Unix(PathBuf),
    /// HTTPS: TCP to `addr`, TLS for `name` with `config`.
    Tls {
        /// The address to connect to.
        addr: SocketAddr,
        /// The server name (certificate check, SNI).
        name: String,
        /// The TLS client configuration (trust anchors).
        config: Arc<ClientConfig>,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "http://{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tls { addr, name, .. } => write!(f, "https://{name} ({addr})"),
        }
    }
}

/// Why an exchange failed (the text names the step and the peer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(pub String);

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (at most the cap asked for).
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` when empty, a string when not JSON).
    pub fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&self.body).into_owned())
        })
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Extra header fields.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body (sent with `Content-Length`).
    pub body: Vec<u8>,
}

impl<'a> Request<'a> {
    /// A `GET` of `path`.
    pub fn get(path: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            path,
            headers: &[],
            body: Vec::new(),
        }
    }
}

/// An open (keep-alive) connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

fn err(what: &str, e: impl std::fmt::Display) -> HttpError {
    HttpError(format!("{what}: {e}"))
}

impl Connection {
    /// Connects within `timeout`; `host` is the `Host:` the requests carry.
    pub async fn open(
        ep: &Endpoint,
        host: &str,
        timeout: Duration,
    ) -> Result<Connection, HttpError> {
        let open = async {
            let sender = match ep {
                Endpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a)
                        .await
                        .map_err(|e| err(&format!("connect to {a}"), e))?;
                    let _ = s.set_nodelay(true);
                    handshake(s).await?
                }
                Endpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p)
                        .await
                        .map_err(|e| err(&format!("connect to {}", p.display()), e))?;
                    handshake(s).await?
                }
                Endpoint::Tls { addr, name, config } => {
                    let s = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(|e| err(&format!("connect to {addr}"), e))?;
                    let _ = s.set_nodelay(true);
                    let server = ServerName::try_from(name.clone()).map_err(|e| err(name, e))?;
                    let t = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(server, s)
                        .await
                        .map_err(|e| err(&format!("TLS with {name} ({addr})"), e))?;
                    handshake(t).await?
                }
            };
            Ok::<_, HttpError>(sender)
        };
        let sender = tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| HttpError(format!("connecting to {ep:?} timed out")))??;
        Ok(Connection {
            sender,
            host: host.to_string(),
        })
    }

    /// Sends a request and reads the answer, at most `max_body` bytes of
    /// it, within `timeout`.
    pub async fn send(
        &mut self,
        req: &Request<'_>,
        max_body: usize,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let mut b = hyper::Request::builder()
            .method(req.method)
            .uri(req.path)
            .header("host", self.host.as_str())
            .header("user-agent", concat!("Laneway/", env!("CARGO_PKG_VERSION")));
        for (k, v) in req.headers {
            b = b.header(*k, *v);
        }
        let request = b
            .body(Full::new(Bytes::from(req.body.clone())))
            .map_err(|e| err("building the request", e))?;
        let exchange = async {
            self.sender
                .ready()
                .await
                .map_err(|e| err("connection", e))?;
            let resp = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| err("sending the request", e))?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = Limited::new(resp.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| err("reading the answer", e))?
                .to_bytes()
                .to_vec();
            Ok::<_, HttpError>(Response {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HttpError(format!("no answer within {timeout:?}")))?
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| err("HTTP handshake", e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on a connection of its own.
pub async fn request(
    ep: &Endpoint,
    host: &str,
    req: &Request<'_>,
    max_body: usize,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut c = Connection::open(ep, host, timeout).await?;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    c.send(req, max_body, left).await
}

/// An `http://` or `https://` URL of an endpoint Laneway calls (another
/// node's API, a webhook): host, port, TLS and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The URL as given.
    pub url: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (80 or 443 when not given).
    pub port: u16,
    /// Whether it is `https://`.
    pub tls: bool,
    /// The path and query, `/` at least.
    pub path: String,
}

impl Url {
    /// Parses an `http://` or `https://` URL; the error names what is wrong.
    pub fn parse(url: &str) -> Result<Url, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default = if tls { 443 } else { 80 };
        let port_of = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("{url:?}: the port {p:?} is not a number"))
        };
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, p) = r
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: an IPv6 address without its ']'"))?;
            match p.strip_prefix(':') {
                Some(p) => (h, port_of(p)?),
                None => (h, default),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, port_of(p)?),
                None => (authority, default),
            }
        };
        if host.is_empty() || host.contains('@') {
            return Err(format!("{url:?} names no host (or has user info)"));
        }
        Ok(Url {
            url: url.to_string(),
            host: host.to_string(),
            port,
            tls,
            path: path.to_string(),
        })
    }

    /// `path` under this URL's path (`/laneway` + `/api/v1/x`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.path.trim_end_matches('/'))
    }

    /// The `Host:` header value.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves the host and makes the endpoint (TLS verified against the
    /// Mozilla roots of webpki-roots).
    pub async fn endpoint(&self) -> Result<Endpoint, HttpError> {
        let addr: SocketAddr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| err(&self.host, e))?
            .next()
            .ok_or_else(|| HttpError(format!("{}: no address", self.host)))?;
        if !self.tls {
            return Ok(Endpoint::Tcp(addr));
        }
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Endpoint::Tls {
            addr,
            name: self.host.clone(),
            config: Arc::new(config),
        })
    }
}

/// Runs an exchange from synchronous code (the CLI, blocking tests) on a
/// runtime of its own: `blocking(request(…))`. Not from inside a runtime.
pub fn blocking<T>(
    exchange: impl std::future::Future<Output = Result<T, HttpError>>,
) -> Result<T, HttpError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err("starting a runtime", e))?
        .block_on(exchange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://10.0.0.2:8025").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls, u.join("/api/v1/x").as_str()),
            ("10.0.0.2", 8025, false, "/api/v1/x")
        );
        let u = Url::parse("https://hooks.example.com/laneway/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls, u.join("/api").as_str()),
            ("hooks.example.com", 443, true, "/laneway/api")
        );
        assert_eq!(u.path, "/laneway/");
        let u = Url::parse("http://[::1]:9000/hook?x=1").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.path.as_str(),
                u.authority().as_str()
            ),
            ("::1", 9000, "/hook?x=1", "[::1]:9000")
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://h:port",
            "mx2:8025",
            "http://[::1",
            "http://u@h/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    /// A raw server on loopback: one connection, each answer sent after
    /// one request head (requests here carry no body).
    async fn raw_server(answers: Vec<String>) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut seen = 0;
            for answer in answers {
                loop {
                    let n = s.read(&mut buf[seen..]).await.unwrap();
                    seen += n;
                    if n == 0 || buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                        seen = 0;
                        break;
                    }
                }
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn keep_alive_chunked_and_capped_answers() {
        let addr = raw_server(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{\"ok\": true }".into(),
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nX-Y: z\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".into(),
        ])
        .await;
        let ep = Endpoint::Tcp(addr);
        let mut c = Connection::open(&ep, "t", Duration::from_secs(5))
            .await
            .unwrap();
        let r = c
            .send(&Request::get("/a"), 1024, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["ok"], true);
        let r = c
            .send(&Request::get("/b"), 1024, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"hello world"[..]));
        assert_eq!(r.header("X-Y"), Some("z"));
    }

    #[tokio::test]
    async fn an_answer_over_the_cap_is_an_error() {
        let body = "x".repeat(100);
        let addr = raw_server(vec![format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{body}"
        )])
        .await;
        let e = request(
            &Endpoint::Tcp(addr),
            "t",
            &Request::get("/"),
            10,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(e.0.contains("reading the answer"), "{e}");
    }
}

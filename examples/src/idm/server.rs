//! The IdMS over HTTPS: rustls (ring provider) → hyper HTTP/1.1 → a `match` on method and
//! path → `mcptt-idm`.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/.well-known/openid-configuration` | discovery JSON |
//! | GET | `/jwks` | JWKS (every key of the ring) |
//! | GET | `/authorize?…` | HTML login form, or 303 to the client with an error, or an error page |
//! | POST | `/authorize` | 303 to the client with `code` on success; otherwise the form again (HTML) or, with `Accept: application/json`, JSON: a SIM challenge (200), a login failure (401, 429 with `Retry-After` when locked out) |
//! | POST | `/token` | token response JSON, or an RFC 6749 §5.2 error |
//!
//! Other methods on these paths get 405 with `Allow` (HEAD works wherever GET does), other
//! paths 404.
//!
//! Bounded: request bodies 16 KiB (413 beyond, refused before reading when the declared length
//! is already larger), request heads 16 KiB, 10 s for the TLS handshake and the request head,
//! at most `max_connections` connections at once.
//!
//! The routing is a plain `match` rather than a router framework: with three requests per login,
//! axum's per-request layers (request extensions for the peer address, boxed body, tower
//! oneshot, response mapping) cost ~15k instructions per login on the IdMS thread.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body as _, Incoming};
use hyper::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use mcptt_idm::oauth::{AuthorizeError, ErrorCode, Form, OAuthError};
use mcptt_idm::{
    AUTHORIZE_PATH, AuthFailure, BufferedRandom, DISCOVERY_PATH, Idms, JWKS_PATH, LoginOutcome,
    TOKEN_PATH,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::html;

/// Largest request body.
pub const MAX_BODY: usize = 16 * 1024;
/// Most form fields in a request.
pub const MAX_FIELDS: usize = 64;
/// Password checks of at most this many PBKDF2 iterations run on the request's own task
/// (about 0.3 ms here: two TLS handshakes' worth, which that task also does in place);
/// costlier ones (production hashes take hundreds of thousands of iterations) run on a
/// blocking thread, so the server's workers go on meanwhile. Handing a cheap check to a
/// blocking thread cost more in thread wake-ups than the check itself saved.
pub const INLINE_VERIFY_ITERATIONS: u32 = 2_000;

/// A response of the server.
pub type Response = hyper::Response<Full<Bytes>>;

/// The wall clock the server reads (a test passes a virtual one).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Binding the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Builds the rustls server configuration (ring provider, TLS 1.3 and 1.2, ALPN `http/1.1`).
///
/// No TLS 1.3 session tickets: a UE logs in once per session and refreshes its token about
/// once per token lifetime, too rarely to resume, so every connection is a full handshake
/// and the server does not compute, store and send two tickets per connection for nothing
/// (in `flow --ues N` they cost the IdMS six `getrandom` calls and one socket write per login).
///
/// # Errors
/// [`ServerError::Tls`] when the key does not match the certificate or is unsupported.
pub fn tls_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

#[derive(Clone)]
struct AppState {
    idms: Arc<Mutex<Idms>>,
    clock: Clock,
    /// OS randomness read in blocks (codes, refresh tokens, token ids).
    rng: Arc<BufferedRandom>,
}

/// A running IdMS.
#[derive(Debug)]
pub struct IdmsHandle {
    /// The bound address.
    pub local_addr: SocketAddr,
    /// The core, shared with the server (e.g. to rotate keys).
    pub idms: Arc<Mutex<Idms>>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl IdmsHandle {
    /// The base URL (`https://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        format!("https://{}", self.local_addr)
    }

    /// How many TCP connections the server has accepted so far.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops accepting connections.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut r = empty(StatusCode::METHOD_NOT_ALLOWED);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Reads a request body of at most [`MAX_BODY`] bytes; `Err` is the answer to give instead
/// (413 when it is longer, 400 when it cannot be read).
///
/// A body that arrives as one data frame (a form that fits one read, as every login's does)
/// is handed on as that frame's buffer, without a copy or a buffer list.
async fn read_body(mut body: Incoming) -> Result<Bytes, Response> {
    let too_large = || empty(StatusCode::PAYLOAD_TOO_LARGE);
    // A declared length over the limit is refused before anything is read.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return Err(too_large());
    }
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(empty(StatusCode::BAD_REQUEST));
        };
        // Trailers (not data) are ignored, as `collect().to_bytes()` does.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        // `more`, once used, holds the first frame too.
        let read = if more.is_empty() {
            first.as_ref().map_or(0, Bytes::len)
        } else {
            more.len()
        };
        if read + data.len() > MAX_BODY {
            return Err(too_large());
        }
        match &first {
            None => first = Some(data),
            Some(head) => {
                if more.is_empty() {
                    more.extend_from_slice(head);
                }
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(if more.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(more)
    })
}

/// Routes one request to its endpoint.
async fn handle(
    state: AppState,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<Response, Infallible> {
    let (parts, body) = req.into_parts();
    let (method, path) = (&parts.method, parts.uri.path());
    let get = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let response = match path {
        DISCOVERY_PATH if get => discovery(&state),
        JWKS_PATH if get => jwks(&state),
        AUTHORIZE_PATH if get => authorize_get(&state, &parts.headers, parts.uri.query()),
        AUTHORIZE_PATH if post => match read_body(body).await {
            Ok(body) => authorize_post(&state, peer, &parts.headers, &body).await,
            Err(r) => r,
        },
        TOKEN_PATH if post => match read_body(body).await {
            Ok(body) => token(&state, &parts.headers, &body),
            Err(r) => r,
        },
        DISCOVERY_PATH | JWKS_PATH => method_not_allowed("GET,HEAD"),
        AUTHORIZE_PATH => method_not_allowed("GET,HEAD,POST"),
        TOKEN_PATH => method_not_allowed("POST"),
        _ => empty(StatusCode::NOT_FOUND),
    };
    if *method == Method::HEAD {
        // The headers of the GET answer (Content-Length included), without its body.
        let (mut head, body) = response.into_parts();
        let len = body.size_hint().exact().unwrap_or(0);
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        return Ok(Response::from_parts(head, Full::new(Bytes::new())));
    }
    Ok(response)
}

/// Starts serving `idms` on `listener` over TLS.
pub fn spawn(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    idms: Idms,
    clock: Clock,
    max_connections: usize,
) -> Result<IdmsHandle, ServerError> {
    let local_addr = listener.local_addr()?;
    let idms = Arc::new(Mutex::new(idms));
    let app = AppState {
        idms: idms.clone(),
        clock,
        rng: Arc::new(BufferedRandom::new()),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("idms: accept failed: {e}");
                    continue;
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = tcp.set_nodelay(true);
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!("idms: connection limit reached, dropping {peer}");
                continue;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            // The handshake, the TLS stream and the HTTP connection each live in one heap
            // block: the task's future is 168 bytes instead of 3456 (debug build), which the
            // spawn and the task's end would otherwise copy whole, and the TLS stream is not
            // copied on its way into the connection (-4k instructions per SIM login in
            // `flow`: memcpy -3.3k, malloc -0.8k).
            tokio::spawn(async move {
                let _permit = permit;
                let tcp = LastFlight::new(tcp);
                let handshake = Box::pin(tokio::time::timeout(
                    Duration::from_secs(10),
                    acceptor.accept(tcp),
                ));
                let tls = match handshake.await {
                    Ok(Ok(tls)) => Box::pin(tls),
                    Ok(Err(e)) => {
                        return tracing::debug!("idms: TLS handshake with {peer} failed: {e}");
                    }
                    Err(_) => return tracing::debug!("idms: TLS handshake with {peer} timed out"),
                };
                let closing = tls.get_ref().0.closing.clone();
                let service = hyper::service::service_fn(move |req| {
                    if asks_close(req.headers()) {
                        closing.store(true, Ordering::Relaxed);
                    }
                    handle(app.clone(), peer, req)
                });
                let connection = Box::pin(
                    hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .max_buf_size(16 * 1024)
                        .serve_connection(TokioIo::new(tls), service),
                );
                let result = connection.await;
                if let Err(e) = result {
                    tracing::debug!("idms: connection with {peer}: {e}");
                }
            });
        }
    });
    Ok(IdmsHandle {
        local_addr,
        idms,
        accepted,
        task,
    })
}

/// True when a request's `Connection` header carries the `close` token (RFC 9112 §9.6): the
/// response is the connection's last.
fn asks_close(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("close"))
        })
    })
}

/// Most bytes [`LastFlight`] holds back before writing them anyway.
const LAST_FLIGHT_LIMIT: usize = 64 * 1024;

/// The TCP socket under an IdMS connection's TLS. Once the request being answered says
/// `Connection: close` (`closing`), what TLS writes (the response's records, then the
/// close_notify) is held and written in one `write` at the shutdown, and the shutdown
/// itself makes no `shutdown(2)`: the socket's close right after sends the FIN. Other
/// connections write through as usual.
struct LastFlight {
    tcp: tokio::net::TcpStream,
    closing: Arc<AtomicBool>,
    held: Vec<u8>,
    /// Bytes of `held` already written.
    sent: usize,
}

impl LastFlight {
    fn new(tcp: tokio::net::TcpStream) -> Self {
        Self {
            tcp,
            closing: Arc::new(AtomicBool::new(false)),
            held: Vec::new(),
            sent: 0,
        }
    }

    fn holding(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Write what is held.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self.held.get(self.sent..).filter(|r| !r.is_empty()) {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for LastFlight {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for LastFlight {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.holding() || this.held.len() >= LAST_FLIGHT_LIMIT {
            ready!(this.poll_release(cx))?;
        }
        if !this.holding() {
            return Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        }
        let mut n = 0;
        if this.held.is_empty() {
            // Room for the close_notify record (24 bytes) that follows the response, so the
            // buffer is allocated once.
            this.held
                .reserve(bufs.iter().map(|b| b.len()).sum::<usize>() + 64);
        }
        for buf in bufs {
            this.held.extend_from_slice(buf);
            n += buf.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.holding() {
            // Held until the shutdown, which follows the last response.
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_release(cx))?;
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_release(cx))?;
        if self.holding() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

fn lock(state: &AppState) -> std::sync::MutexGuard<'_, Idms> {
    // A panic while holding the lock would be a bug; the state stays usable.
    state
        .idms
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn with_body(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

fn json(status: StatusCode, body: String) -> Response {
    let mut r = with_body(status, body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = with_body(status, body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn see_other(location: &str) -> Response {
    HeaderValue::from_str(location).map_or_else(|_| bad_redirect(), redirect_to)
}

/// The 303 to `location` (not cached).
fn redirect_to(location: HeaderValue) -> Response {
    let mut r = empty(StatusCode::SEE_OTHER);
    r.headers_mut().insert(header::LOCATION, location);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// [`see_other`] for an owned location: its bytes become the header value's without a copy.
fn see_other_owned(location: String) -> Response {
    // The characters `HeaderValue::from_str` accepts (`from_maybe_shared` also takes bytes
    // over 0x7f, which `see_other` refuses).
    // No early exit: the fold over every byte vectorizes.
    let odd = location.bytes().fold(false, |odd, b| {
        odd | (!(0x20..0x7f).contains(&b) & (b != b'\t'))
    });
    if odd {
        return see_other(&location);
    }
    HeaderValue::from_maybe_shared(Bytes::from(location))
        .map_or_else(|_| bad_redirect(), redirect_to)
}

/// The answer when a redirect location cannot be a header value.
fn bad_redirect() -> Response {
    html_response(
        StatusCode::BAD_REQUEST,
        html::error_page(&OAuthError {
            code: ErrorCode::InvalidRequest,
            description: "bad redirect",
        }),
    )
}

fn authorize_error(e: &AuthorizeError, wants_json: bool) -> Response {
    match e.location() {
        Some(loc) => see_other(&loc),
        None if wants_json => json(StatusCode::BAD_REQUEST, e.error().to_json()),
        None => html_response(StatusCode::BAD_REQUEST, html::error_page(e.error())),
    }
}

/// Decodes a form body; `None` unless the content type is `application/x-www-form-urlencoded`.
fn form_body(headers: &HeaderMap, body: &[u8]) -> Option<Result<Form, mcptt_idm::Error>> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let text = std::str::from_utf8(body).ok().filter(|_| is_form)?;
    Some(Form::parse(text, MAX_FIELDS))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

fn discovery(state: &AppState) -> Response {
    let doc = lock(state).discovery_document().to_owned();
    json(StatusCode::OK, doc)
}

fn jwks(state: &AppState) -> Response {
    let doc = lock(state).jwks_document().map(str::to_owned);
    match doc {
        Ok(body) => {
            let mut r = json(StatusCode::OK, body);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            );
            r.headers_mut().remove(header::PRAGMA);
            r
        }
        Err(e) => {
            tracing::error!("idms: JWKS: {e}");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                OAuthError {
                    code: ErrorCode::ServerError,
                    description: "JWKS unavailable",
                }
                .to_json(),
            )
        }
    }
}

fn authorize_get(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> Response {
    let json_wanted = wants_json(headers);
    let Ok(params) = Form::parse(query.unwrap_or(""), MAX_FIELDS) else {
        let e = OAuthError {
            code: ErrorCode::InvalidRequest,
            description: "malformed query",
        };
        return authorize_error(&AuthorizeError::Display(e), json_wanted);
    };
    let result = lock(state).authorize_form(&params);
    match result {
        Ok(page) => html_response(StatusCode::OK, html::login_page(&page, None, None)),
        Err(e) => authorize_error(&e, json_wanted),
    }
}

async fn authorize_post(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let json_wanted = wants_json(headers);
    let Some(Ok(params)) = form_body(headers, body) else {
        let e = OAuthError {
            code: ErrorCode::InvalidRequest,
            description: "expected an application/x-www-form-urlencoded body",
        };
        return authorize_error(&AuthorizeError::Display(e), json_wanted);
    };
    let now = (state.clock)();
    // The password check (PBKDF2) runs without the lock, so logins of other users go on
    // meanwhile; a costly one runs on a blocking thread (see INLINE_VERIFY_ITERATIONS). The
    // blocking task owns the pending login and always finishes it (its throttle slot is
    // released) even if this request is dropped.
    let pending = lock(state).begin_login_form(params, peer.ip(), now);
    let outcome = match pending.verify_iterations() {
        Some(n) if n > INLINE_VERIFY_ITERATIONS => {
            let worker = state.clone();
            tokio::task::spawn_blocking(move || {
                let checked = pending.verify();
                lock(&worker).finish_login(checked, now, worker.rng.as_ref())
            })
            .await
        }
        _ => {
            let checked = pending.verify();
            Ok(lock(state).finish_login(checked, now, state.rng.as_ref()))
        }
    };
    let Ok(outcome) = outcome else {
        return json(
            StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError {
                code: ErrorCode::ServerError,
                description: "internal error",
            }
            .to_json(),
        );
    };
    match outcome {
        LoginOutcome::Redirect(location) => see_other_owned(location),
        LoginOutcome::Challenge { page, challenge } => {
            if json_wanted {
                let expires_in = challenge
                    .expires
                    .duration_since(now)
                    .map_or(0, |d| d.as_secs());
                json(StatusCode::OK, challenge.to_json(&page.acr, expires_in))
            } else {
                html_response(
                    StatusCode::OK,
                    html::login_page(&page, None, Some(&challenge)),
                )
            }
        }
        LoginOutcome::Failed { page, failure } => {
            tracing::info!(
                "idms: login failed from {peer} for {:?}: {failure}",
                page.username.as_deref().unwrap_or("")
            );
            let (status, message, retry) = match failure {
                AuthFailure::Locked { until } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed attempts. Try again later.",
                    until.duration_since(now).ok().map(|d| d.as_secs().max(1)),
                ),
                AuthFailure::Busy | AuthFailure::Internal => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is busy. Try again later.",
                    Some(5),
                ),
                _ => (StatusCode::UNAUTHORIZED, "Sign-in failed.", None),
            };
            let mut r = if json_wanted {
                let code = if status == StatusCode::UNAUTHORIZED {
                    "access_denied"
                } else {
                    "temporarily_unavailable"
                };
                json(
                    status,
                    serde_json::json!({ "error": code, "error_description": message }).to_string(),
                )
            } else {
                html_response(status, html::login_page(&page, Some(message), None))
            };
            if let Some(secs) = retry {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
        LoginOutcome::Error(e) => authorize_error(&e, json_wanted),
        _ => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError {
                code: ErrorCode::ServerError,
                description: "internal error",
            }
            .to_json(),
        ),
    }
}

fn token(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(Ok(params)) = form_body(headers, body) else {
        let e = OAuthError {
            code: ErrorCode::InvalidRequest,
            description: "expected an application/x-www-form-urlencoded body",
        };
        return json(StatusCode::BAD_REQUEST, e.to_json());
    };
    let now = (state.clock)();
    let result = lock(state).token_form(&params, now, state.rng.as_ref());
    match result {
        Ok(t) => json(StatusCode::OK, t.to_json()),
        Err(e) => {
            tracing::info!("idms: token request refused: {e}");
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut r = json(status, e.to_json());
            if status == StatusCode::UNAUTHORIZED {
                // RFC 6749 §5.2: 401 comes with WWW-Authenticate.
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"idms\""),
                );
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::idm::client::IdmClient;
    use crate::idm::demo;
    use mcptt_idm::{IdmsConfig, KeyRing, SystemRandom};
    use mcptt_token::{Algorithm, SigningKey};

    /// An IdMS with the demo directory on a loopback port, with a self-signed certificate
    /// (returned for the client's trust).
    async fn start_demo_idms() -> (IdmsHandle, CertificateDer<'static>) {
        let rng = SystemRandom::new();
        let directory = demo::demo_directory(1000, &[], &rng).unwrap();
        let key =
            SigningKey::generate(Algorithm::Es256, "k", &ring::rand::SystemRandom::new()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let idms = Idms::new(
            IdmsConfig::new(format!("https://{addr}")),
            directory,
            KeyRing::new(key),
        )
        .unwrap();
        let (der, key, _) = demo::self_signed_cert().unwrap();
        let tls = tls_config(vec![der.clone()], key).unwrap();
        let handle = spawn(listener, tls, idms, system_clock(), 8).unwrap();
        (handle, der)
    }

    /// The routing contract over real TLS and HTTP: 404, 405 with `Allow`, HEAD as GET without
    /// a body, 413 for a body declared longer than the limit, a body at the limit read.
    #[tokio::test]
    async fn routing_answers() {
        let (handle, der) = start_demo_idms().await;
        let client = IdmClient::new(&handle.base_url(), &[der]).unwrap();
        let json = "application/json";

        let get = client.request("GET", JWKS_PATH, None, json).await.unwrap();
        assert_eq!(get.status, 200);
        assert!(get.text().contains("\"keys\""));
        let head = client.request("HEAD", JWKS_PATH, None, json).await.unwrap();
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str())
        );
        assert_eq!(head.header("cache-control"), get.header("cache-control"));

        let put = client.request("PUT", TOKEN_PATH, Some(""), json).await;
        let put = put.unwrap();
        assert_eq!((put.status, put.header("allow")), (405, Some("POST")));
        let post = client.request("POST", JWKS_PATH, Some(""), json).await;
        let post = post.unwrap();
        assert_eq!((post.status, post.header("allow")), (405, Some("GET,HEAD")));
        let nope = client.request("GET", "/nope", None, json).await.unwrap();
        assert_eq!(nope.status, 404);

        let big = "a".repeat(MAX_BODY + 1);
        let r = client.request("POST", TOKEN_PATH, Some(&big), json).await;
        assert_eq!(r.unwrap().status, 413);
        let just = format!("x={}", "a".repeat(MAX_BODY - 2));
        let r = client.request("POST", TOKEN_PATH, Some(&just), json).await;
        // At the limit the body is read and the token endpoint answers (unknown grant).
        assert_eq!(r.unwrap().status, 400);
        // A body of many TCP reads is put together whole and in order: the fields at its
        // end are read (a known client, then the grant type refused), and no part is read
        // twice (that would repeat `p0`, refused as repeated).
        let mut long: String = (0..15)
            .map(|i| format!("p{i}={}&", "a".repeat(1000)))
            .collect();
        long.push_str(&format!(
            "client_id={}&grant_type=nope",
            demo::DEMO_CLIENT_ID
        ));
        let r = client
            .request("POST", TOKEN_PATH, Some(&long), json)
            .await
            .unwrap();
        assert_eq!(r.status, 400);
        assert!(r.text().contains("unsupported_grant_type"), "{}", r.text());
        handle.shutdown();
    }

    #[test]
    fn connection_close_token() {
        let mut h = HeaderMap::new();
        assert!(!asks_close(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(!asks_close(&h));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, CLOSE"),
        );
        assert!(asks_close(&h));
        h.insert(header::CONNECTION, HeaderValue::from_static("closed"));
        assert!(!asks_close(&h));
    }

    /// A `Connection: close` request over real TLS: the held last flight (response, then
    /// close_notify) reaches the client whole, and the stream ends cleanly (close_notify
    /// seen, no truncation error).
    #[tokio::test]
    async fn last_response_and_close_notify_arrive() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (handle, der) = start_demo_idms().await;
        let addr = handle.local_addr;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let ask = format!("GET {JWKS_PATH} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tls.write_all(ask.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        // read_to_end fails with UnexpectedEof if the server closed without close_notify,
        // and would wait forever (here: time out) if the held bytes were never written.
        tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8(rest).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("]}"), "{text}");
        handle.shutdown();
    }
}

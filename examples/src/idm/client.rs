//! The UE side of step 1: authorization code + PKCE S256 against the IdMS without a browser.
//!
//! ```text
//!  UE                                   IdMS
//!  │ POST /authorize (form: request + credentials, Accept: application/json)
//!  │───────────────────────────────────▶│
//!  │ 200 {challenge_id, rand, autn}     │   (SIM login only: the USIM computes RES,
//!  │◀───────────────────────────────────│    or AUTS when SQN is stale)
//!  │ POST /authorize (… challenge_id, res)
//!  │───────────────────────────────────▶│
//!  │ 303 Location: redirect_uri?code&state
//!  │◀───────────────────────────────────│
//!  │ POST /token (code, code_verifier)  │
//!  │───────────────────────────────────▶│
//!  │ 200 {access_token, id_token, refresh_token}
//!  │◀───────────────────────────────────│
//! ```
//! The client checks `state`, and validates the ID token (signature from the JWKS, issuer,
//! audience = client id, `nonce`) before returning the tokens. The issuer is the IdMS's URL
//! (OpenID Connect Discovery 1.0 §4.3: the issuer is the URL the discovery document is
//! fetched under), so a token naming it needs no discovery request; a token naming another
//! issuer is checked against the `issuer` of the discovery document, fetched then.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use mcptt_idm::milenage::{AkaFailure, Usim};
use mcptt_idm::oauth::{append_query, parse_form, percent_encode, s256_challenge};
use mcptt_idm::otp::Totp;
use mcptt_idm::{
    ACR_PASSWORD, ACR_SIM, ACR_TWO_FACTOR, AUTHORIZE_PATH, DISCOVERY_PATH, JWKS_PATH, TOKEN_PATH,
    TokenResponse, hex,
};
use mcptt_token::{IdToken, JwkSet, KeyStore, Validator, ValidatorConfig};
use ring::rand::SecureRandom as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::server::{Clock, system_clock};

/// Largest response body read.
pub const MAX_RESPONSE_BODY: usize = 256 * 1024;
/// Deadline of one HTTP exchange.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not `https://host:port`.
    #[error("unsupported IdMS URL {0:?} (expected https://host[:port])")]
    Url(String),
    /// Connecting, TLS or HTTP failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The exchange did not finish in time.
    #[error("IdMS request timed out")]
    Timeout,
    /// The IdMS refused the login.
    #[error("login refused ({status}): {error}: {description}")]
    LoginRefused {
        /// HTTP status.
        status: u16,
        /// `error` code.
        error: String,
        /// `error_description`.
        description: String,
    },
    /// The token endpoint answered with an error.
    #[error("token request refused ({status}): {error}: {description}")]
    TokenRefused {
        /// HTTP status.
        status: u16,
        /// `error` code (RFC 6749 §5.2).
        error: String,
        /// `error_description`.
        description: String,
    },
    /// The IdMS answered something this client does not understand or accept.
    #[error("unexpected IdMS answer: {0}")]
    Protocol(String),
    /// The USIM refused the IdMS's challenge (MAC failure: not our network).
    #[error("the SIM refused the challenge: {0}")]
    Sim(AkaFailure),
    /// The ID token did not validate.
    #[error("ID token refused: {0}")]
    IdToken(#[from] mcptt_token::Error),
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the user authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Password (`3gpp:acr:password`).
    Password {
        /// MCPTT ID or login name.
        username: String,
        /// Password.
        password: String,
    },
    /// Password plus a TOTP code computed from the shared secret at the current time.
    TwoFactor {
        /// MCPTT ID or login name.
        username: String,
        /// Password.
        password: String,
        /// The TOTP generator (the user's authenticator).
        totp: Totp,
    },
    /// SIM-based: the USIM answers the IdMS's MILENAGE challenge.
    Sim {
        /// MCPTT ID or login name.
        username: String,
        /// The USIM (shared: it remembers the highest SQN it accepted).
        usim: Arc<Mutex<Usim>>,
    },
}

impl Credentials {
    /// The `acr_values` this login asks for.
    pub fn acr(&self) -> &'static str {
        match self {
            Self::Password { .. } => ACR_PASSWORD,
            Self::TwoFactor { .. } => ACR_TWO_FACTOR,
            Self::Sim { .. } => ACR_SIM,
        }
    }

    fn username(&self) -> &str {
        match self {
            Self::Password { username, .. }
            | Self::TwoFactor { username, .. }
            | Self::Sim { username, .. } => username,
        }
    }
}

/// What the client asks for.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// OAuth client id.
    pub client_id: String,
    /// Registered redirect URI (not followed: the code is read from the redirect).
    pub redirect_uri: String,
    /// Scopes (must contain `openid`).
    pub scope: String,
    /// How the user authenticates.
    pub credentials: Credentials,
}

/// The tokens of a successful login, the ID token already validated.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The token response as received.
    pub response: TokenResponse,
    /// The validated ID token.
    pub id_token: IdToken,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The HTTPS connection a series of exchanges shares: a login's authorize, token and JWKS
/// requests all go over one keep-alive connection, so a login costs one TLS handshake (the
/// JWKS request, the last, asks the IdMS to close the connection after it).
#[derive(Default)]
struct Session {
    sender: Option<Sender>,
    keep_alive: bool,
}

impl Session {
    /// A session that keeps its connection open between exchanges.
    fn keep_alive() -> Self {
        Self {
            keep_alive: true,
            ..Self::default()
        }
    }

    /// A session of one exchange (`Connection: close`).
    fn closing() -> Self {
        Self::default()
    }
}

/// An HTTPS client for one IdMS.
#[derive(Clone)]
pub struct IdmClient {
    base: String,
    authority: String,
    server_name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
    clock: Clock,
}

impl std::fmt::Debug for IdmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdmClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn transport(e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(e.to_string())
}

fn random_token(bytes: usize) -> Result<String, ClientError> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| ClientError::Transport("random generator failed".into()))?;
    Ok(base64_url(&buf))
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads an `{"error","error_description"}` body.
fn oauth_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
    (s("error"), s("error_description"))
}

impl IdmClient {
    /// A client for the IdMS at `base_url` (`https://host[:port]`), trusting `roots`.
    ///
    /// # Errors
    /// [`ClientError::Url`] for another scheme or a bad host.
    pub fn new(base_url: &str, roots: &[CertificateDer<'static>]) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("https://")
            .ok_or_else(|| ClientError::Url(base_url.to_owned()))?;
        if rest.is_empty() || rest.contains('/') {
            return Err(ClientError::Url(base_url.to_owned()));
        }
        let bad = || ClientError::Url(base_url.to_owned());
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port: u16 = port.map_or(Ok(443), str::parse).map_err(|_| bad())?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let server_name = ServerName::try_from(host.to_owned()).map_err(|_| bad())?;
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).map_err(transport)?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(transport)?
        .with_root_certificates(store)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            base,
            authority,
            server_name,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            clock: system_clock(),
        })
    }

    /// Uses another clock for TOTP codes and token time checks (tests use a virtual one).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now_unix(&self) -> u64 {
        (self.clock)()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// One HTTP/1.1 exchange on a fresh TLS connection (closed after the answer). Redirects
    /// are not followed.
    ///
    /// # Errors
    /// [`ClientError::Transport`] or [`ClientError::Timeout`].
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        form: Option<&str>,
        accept: &str,
    ) -> Result<HttpResponse, ClientError> {
        let mut once = Session::closing();
        self.request_on(&mut once, method, path, form, accept).await
    }

    /// One exchange on `session`'s keep-alive connection (opened, or opened again when the
    /// IdMS closed it, before the request is sent; a request is never sent twice).
    async fn request_on(
        &self,
        session: &mut Session,
        method: &str,
        path: &str,
        form: Option<&str>,
        accept: &str,
    ) -> Result<HttpResponse, ClientError> {
        tokio::time::timeout(
            EXCHANGE_TIMEOUT,
            self.exchange(session, method, path, form, accept),
        )
        .await
        .map_err(|_| ClientError::Timeout)?
    }

    async fn connect(&self) -> Result<Sender, ClientError> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(transport)?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(transport)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(transport)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn exchange(
        &self,
        session: &mut Session,
        method: &str,
        path: &str,
        form: Option<&str>,
        accept: &str,
    ) -> Result<HttpResponse, ClientError> {
        // Take the open connection if it is still usable, else open one.
        let open = match session.sender.take() {
            Some(mut s) if !s.is_closed() => s.ready().await.is_ok().then_some(s),
            _ => None,
        };
        let mut sender = match open {
            Some(s) => s,
            None => self.connect().await?,
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.authority.as_str())
            .header(hyper::header::ACCEPT, accept);
        if !session.keep_alive {
            builder = builder.header(hyper::header::CONNECTION, "close");
        }
        if form.is_some() {
            builder = builder.header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        let body = Full::new(Bytes::from(form.unwrap_or("").to_owned()));
        let req = builder.body(body).map_err(transport)?;
        let resp = sender.send_request(req).await.map_err(transport)?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BODY)
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        if session.keep_alive {
            session.sender = Some(sender);
        }
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(HttpResponse {
            status: parts.status.as_u16(),
            headers,
            body: body.to_vec(),
        })
    }

    /// GETs a path and returns the body of a 200 answer.
    ///
    /// # Errors
    /// [`ClientError::Protocol`] for another status.
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        self.get_text_on(&mut Session::closing(), path).await
    }

    async fn get_text_on(&self, session: &mut Session, path: &str) -> Result<String, ClientError> {
        let r = self
            .request_on(session, "GET", path, None, "application/json")
            .await?;
        if r.status != 200 {
            return Err(ClientError::Protocol(format!(
                "GET {path}: status {}",
                r.status
            )));
        }
        Ok(r.text())
    }

    /// The discovery document.
    ///
    /// # Errors
    /// As [`IdmClient::get_text`], or [`ClientError::Protocol`] for bad JSON.
    pub async fn discovery(&self) -> Result<serde_json::Value, ClientError> {
        self.discovery_on(&mut Session::closing()).await
    }

    async fn discovery_on(&self, session: &mut Session) -> Result<serde_json::Value, ClientError> {
        serde_json::from_str(&self.get_text_on(session, DISCOVERY_PATH).await?)
            .map_err(|e| ClientError::Protocol(format!("discovery: {e}")))
    }

    /// The JWKS JSON.
    ///
    /// # Errors
    /// As [`IdmClient::get_text`].
    pub async fn jwks(&self) -> Result<String, ClientError> {
        self.get_text(JWKS_PATH).await
    }

    /// Performs the whole login (authorization code + PKCE S256) and returns validated tokens.
    /// Authorize, token and JWKS go over one keep-alive HTTPS connection, which the JWKS
    /// request asks the IdMS to close; the discovery document, fetched only when the ID token
    /// names an issuer other than the IdMS's URL, comes over a fresh one.
    ///
    /// # Errors
    /// [`ClientError`] naming what failed.
    pub async fn login(&self, request: &LoginRequest) -> Result<Tokens, ClientError> {
        self.login_on(&mut Session::keep_alive(), request).await
    }

    async fn login_on(
        &self,
        session: &mut Session,
        request: &LoginRequest,
    ) -> Result<Tokens, ClientError> {
        let verifier = random_token(32)?;
        let state = random_token(16)?;
        let nonce = random_token(16)?;
        let authorize = [
            ("response_type", "code".to_owned()),
            ("client_id", request.client_id.clone()),
            ("redirect_uri", request.redirect_uri.clone()),
            ("scope", request.scope.clone()),
            ("state", state.clone()),
            ("nonce", nonce.clone()),
            ("code_challenge", s256_challenge(&verifier)),
            ("code_challenge_method", "S256".to_owned()),
            ("acr_values", request.credentials.acr().to_owned()),
            ("username", request.credentials.username().to_owned()),
        ];
        let mut form: String = authorize
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        match &request.credentials {
            Credentials::Password { password, .. } => {
                form.push_str(&format!("&password={}", percent_encode(password)))
            }
            Credentials::TwoFactor { password, totp, .. } => {
                let code = totp
                    .code_at(self.now_unix())
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                form.push_str(&format!(
                    "&password={}&otp={code}",
                    percent_encode(password)
                ));
            }
            Credentials::Sim { .. } => {}
        }
        let mut extra = String::new();
        // At most: challenge, resynchronisation + new challenge, answer.
        for _ in 0..4 {
            let r = self
                .request_on(
                    session,
                    "POST",
                    AUTHORIZE_PATH,
                    Some(&format!("{form}{extra}")),
                    "application/json",
                )
                .await?;
            match r.status {
                303 => {
                    let location = r
                        .header("location")
                        .ok_or_else(|| ClientError::Protocol("303 without Location".into()))?;
                    return self
                        .redeem(session, request, location, &state, &verifier, &nonce)
                        .await;
                }
                200 => {
                    let Credentials::Sim { usim, .. } = &request.credentials else {
                        return Err(ClientError::Protocol("unexpected challenge".into()));
                    };
                    let v: serde_json::Value = serde_json::from_slice(&r.body)
                        .map_err(|e| ClientError::Protocol(format!("challenge: {e}")))?;
                    let field = |k: &str| {
                        v.get(k)
                            .and_then(|x| x.as_str())
                            .map(str::to_owned)
                            .ok_or_else(|| ClientError::Protocol(format!("challenge without {k}")))
                    };
                    let id = field("challenge_id")?;
                    let rand = hex::decode_array::<16>(&field("rand")?)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    let autn = hex::decode_array::<16>(&field("autn")?)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    let answer = usim
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .respond(&rand, &autn);
                    extra = match answer {
                        Ok(res) => format!(
                            "&challenge_id={}&res={}",
                            percent_encode(&id),
                            hex::encode(&res)
                        ),
                        Err(AkaFailure::Sync { auts }) => format!(
                            "&challenge_id={}&auts={}",
                            percent_encode(&id),
                            hex::encode(&auts)
                        ),
                        Err(e) => return Err(ClientError::Sim(e)),
                    };
                }
                status => {
                    let (error, description) = oauth_error(&r.body);
                    return Err(ClientError::LoginRefused {
                        status,
                        error,
                        description,
                    });
                }
            }
        }
        Err(ClientError::Protocol(
            "too many authentication rounds".into(),
        ))
    }

    async fn redeem(
        &self,
        session: &mut Session,
        request: &LoginRequest,
        location: &str,
        state: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Tokens, ClientError> {
        let query = location
            .strip_prefix(request.redirect_uri.as_str())
            .and_then(|q| q.strip_prefix('?'))
            .ok_or_else(|| {
                ClientError::Protocol(format!("redirect to an unexpected place: {location}"))
            })?;
        let params = parse_form(query, 16).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("state") != Some(state) {
            return Err(ClientError::Protocol(
                "state mismatch in the redirect".into(),
            ));
        }
        if let Some(error) = get("error") {
            return Err(ClientError::LoginRefused {
                status: 303,
                error: error.to_owned(),
                description: get("error_description").unwrap_or("").to_owned(),
            });
        }
        let code =
            get("code").ok_or_else(|| ClientError::Protocol("redirect without code".into()))?;
        let form = append_query(
            "",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &request.client_id),
                ("code", code),
                ("redirect_uri", &request.redirect_uri),
                ("code_verifier", verifier),
            ],
        );
        let response = self
            .token_request(session, form.trim_start_matches('?'))
            .await?;
        let id_token = self
            .validate_id_token_on(session, &response, &request.client_id, Some(nonce))
            .await?;
        Ok(Tokens { response, id_token })
    }

    async fn token_request(
        &self,
        session: &mut Session,
        form: &str,
    ) -> Result<TokenResponse, ClientError> {
        let r = self
            .request_on(session, "POST", TOKEN_PATH, Some(form), "application/json")
            .await?;
        if r.status != 200 {
            let (error, description) = oauth_error(&r.body);
            return Err(ClientError::TokenRefused {
                status: r.status,
                error,
                description,
            });
        }
        serde_json::from_slice(&r.body)
            .map_err(|e| ClientError::Protocol(format!("token response: {e}")))
    }

    /// Validates the ID token of a token response against the IdMS's JWKS and issuer (its URL,
    /// or the discovery document's `issuer` when the token names another).
    ///
    /// # Errors
    /// [`ClientError::IdToken`] when it does not validate.
    pub async fn validate_id_token(
        &self,
        response: &TokenResponse,
        client_id: &str,
        nonce: Option<&str>,
    ) -> Result<IdToken, ClientError> {
        self.validate_id_token_on(&mut Session::keep_alive(), response, client_id, nonce)
            .await
    }

    async fn validate_id_token_on(
        &self,
        session: &mut Session,
        response: &TokenResponse,
        client_id: &str,
        nonce: Option<&str>,
    ) -> Result<IdToken, ClientError> {
        let token = response
            .id_token
            .as_deref()
            .ok_or_else(|| ClientError::Protocol("no id_token".into()))?;
        // The JWKS is the session's last exchange (unless the token names another issuer:
        // then the discovery document follows on a fresh connection): it says
        // `Connection: close` (RFC 9112 §9.6), so the IdMS closes after answering instead of
        // waking up once more to read this client's close_notify.
        session.keep_alive = false;
        let set = JwkSet::from_json(&self.get_text_on(session, JWKS_PATH).await?)?;
        // The signature is checked first in either case; only the expected `iss` differs.
        let by_url = Validator::new(
            ValidatorConfig::new(self.base.clone(), client_id),
            KeyStore::new(set.clone()),
        )?;
        match by_url.validate_id_token(token, self.now_unix(), nonce) {
            Err(mcptt_token::Error::Issuer { .. }) => {}
            other => return Ok(other?),
        }
        let issuer = self
            .discovery_on(session)
            .await?
            .get("issuer")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol("discovery without issuer".into()))?;
        let validator =
            Validator::new(ValidatorConfig::new(issuer, client_id), KeyStore::new(set))?;
        Ok(validator.validate_id_token(token, self.now_unix(), nonce)?)
    }

    /// Uses a refresh token (which is then spent) for new tokens.
    ///
    /// # Errors
    /// [`ClientError::TokenRefused`] with the IdMS's error.
    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<TokenResponse, ClientError> {
        let form = append_query(
            "",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("refresh_token", refresh_token),
            ],
        );
        self.token_request(&mut Session::closing(), form.trim_start_matches('?'))
            .await
    }
}

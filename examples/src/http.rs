//! A minimal HTTP/1.1 client over one TCP connection (`httparse` for the response head), used by
//! the MCPTT server to fetch the IdMS JWKS and discovery document. Bounded: the response head
//! and body sizes are capped and the exchange has a deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted (head + body).
pub const MAX_RESPONSE: usize = 256 * 1024;

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL is not `http://host:port/path`.
    #[error("unsupported URL {0:?} (expected http://host:port/path)")]
    Url(String),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The response could not be parsed.
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    /// The response exceeded [`MAX_RESPONSE`].
    #[error("HTTP response larger than {MAX_RESPONSE} bytes")]
    TooLarge,
    /// The exchange did not finish in time.
    #[error("HTTP request timed out")]
    Timeout,
    /// The server answered with a non-2xx status.
    #[error("HTTP status {status}: {body}")]
    Status {
        /// Status code.
        status: u16,
        /// Response body (lossy UTF-8, truncated).
        body: String,
    },
}

/// Splits `http://host:port/path` into (`host:port`, `/path`).
pub fn split_url(url: &str) -> Result<(String, String), HttpError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::Url(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HttpError::Url(url.to_owned()));
    }
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

/// GETs `url` and returns the body of a 2xx response.
pub async fn get(url: &str, timeout: Duration) -> Result<String, HttpError> {
    tokio::time::timeout(timeout, get_inner(url))
        .await
        .map_err(|_| HttpError::Timeout)?
}

async fn get_inner(url: &str) -> Result<String, HttpError> {
    let (authority, path) = split_url(url)?;
    let mut stream = TcpStream::connect(&authority).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if buf.len() > MAX_RESPONSE {
            return Err(HttpError::TooLarge);
        }
        if let Some(done) = complete(&buf)? {
            return done;
        }
    }
    complete(&buf)?.unwrap_or(Err(HttpError::Malformed("connection closed early")))
}

/// The body once the response is complete (`Content-Length`, or the whole rest after close).
fn complete(buf: &[u8]) -> Result<Option<Result<String, HttpError>>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HttpError::Malformed("bad status line or header")),
    };
    let status = resp.code.unwrap_or(0);
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let body = buf.get(head_len..).unwrap_or_default();
    let body = match length {
        Some(len) if body.len() >= len => body.get(..len).unwrap_or_default(),
        Some(_) => return Ok(None),
        None => body,
    };
    let text = String::from_utf8_lossy(body).into_owned();
    if (200..300).contains(&status) {
        Ok(Some(Ok(text)))
    } else {
        Ok(Some(Err(HttpError::Status {
            status,
            body: text.chars().take(200).collect(),
        })))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/jwks").unwrap(),
            ("127.0.0.1:8080".into(), "/jwks".into())
        );
        assert_eq!(
            split_url("http://idms").unwrap(),
            ("idms:80".into(), "/".into())
        );
        assert!(split_url("https://idms/").is_err());
    }

    #[test]
    fn responses_complete_on_content_length() {
        let partial = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab";
        assert!(complete(partial).unwrap().is_none());
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde";
        assert_eq!(complete(full).unwrap().unwrap().unwrap(), "abcde");
        let err = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        assert!(matches!(
            complete(err).unwrap().unwrap(),
            Err(HttpError::Status { status: 404, .. })
        ));
    }
}

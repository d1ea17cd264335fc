//! Small helpers over `mcptt-sip` messages shared by the actors: what to record in the trace,
//! and the few header reads the proxy glue needs.

use mcptt_sip::{KnownHeader, Message};

use crate::trace::{Actor, Observation, WireText};

/// Headers shown on the ladder under each message's first line.
pub const KEY_HEADERS: [&str; 14] = [
    "From",
    "To",
    "Contact",
    "Expires",
    "Event",
    "P-Asserted-Identity",
    "Content-Type",
    "SIP-ETag",
    "SIP-If-Match",
    "Subscription-State",
    "Warning",
    "Accept",
    "Record-Route",
    "Route",
];

/// Largest body kept in a trace record (longer bodies are cut, with a note).
pub const MAX_RECORDED_BODY: usize = 16 * 1024;

/// The request method, or the CSeq method of a response.
#[must_use]
pub fn method(msg: &Message) -> String {
    method_str(msg).to_owned()
}

/// [`method`] without a copy (the proxy glue only compares it).
#[must_use]
pub fn method_str(msg: &Message) -> &str {
    match msg {
        Message::Request(r) => r.method().as_str(),
        Message::Response(r) => r
            .headers()
            .get_known(KnownHeader::CSeq)
            // RFC 3261 §20.16: `CSeq: 1*DIGIT LWS Method`, LWS being ASCII.
            .and_then(|v| v.split_ascii_whitespace().nth(1))
            .unwrap_or(""),
    }
}

/// The Call-ID, if present.
#[must_use]
pub fn call_id(msg: &Message) -> Option<String> {
    msg.headers()
        .get_known(KnownHeader::CallId)
        .map(|v| v.trim().to_owned())
}

/// The first line of a message.
#[must_use]
pub fn first_line(msg: &Message) -> String {
    first_line_str(msg).to_owned()
}

/// [`first_line`] without a copy (a load run's trace appends it to its buffer of lines).
#[must_use]
pub fn first_line_str(msg: &Message) -> &str {
    match msg {
        Message::Request(r) => r.start_line(),
        Message::Response(r) => r.start_line(),
    }
}

/// The URI inside a name-addr or addr-spec header value (`"A" <sip:a@x>;tag=1` → `sip:a@x`).
#[must_use]
pub fn uri_of(value: &str) -> String {
    let v = value.trim();
    if let Some(start) = v.find('<') {
        let rest = v.get(start + 1..).unwrap_or("");
        return rest.split('>').next().unwrap_or("").trim().to_owned();
    }
    v.split(';').next().unwrap_or("").trim().to_owned()
}

/// The `user` part of a SIP URI (`sip:ue1@example.com` → `ue1`), or the whole URI.
#[must_use]
pub fn user_of(uri: &str) -> String {
    user_part(uri).to_owned()
}

/// [`user_of`] without a copy.
#[must_use]
pub fn user_part(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    match rest.split_once('@') {
        Some((user, _)) => user,
        None => rest,
    }
}

/// A one-line summary of the bodies the ladder cares about: the service state of a NOTIFY,
/// the first line of a third-party REGISTER's `message/sip` body.
#[must_use]
pub fn body_summary(msg: &Message) -> Option<String> {
    let ct = msg.headers().get("Content-Type")?.to_ascii_lowercase();
    let body = msg.body();
    if ct.starts_with(mcptt_service_state::body::SERVICE_STATE_CONTENT_TYPE) {
        return Some(
            match mcptt_service_state::body::ServiceState::parse(&body) {
                Ok(s) => format!(
                    "state={} authorisation={} registration={} mcptt-id={} version={}",
                    super::ue::combined(s.state),
                    s.authorisation.as_str(),
                    if s.registration == mcptt_service_state::RegistrationState::Registered {
                        "registered"
                    } else {
                        "not-registered"
                    },
                    s.mcptt_id,
                    s.version
                ),
                Err(e) => format!("unparsable service state: {e}"),
            },
        );
    }
    if ct.starts_with("message/sip") {
        if body.is_empty() {
            return None;
        }
        // Only the first line is shown: only it is decoded.
        let line = body.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
        return Some(format!("message/sip: {line}"));
    }
    if ct.starts_with("multipart/mixed")
        || ct.starts_with(mcptt_service_state::body::MCPTT_INFO_CONTENT_TYPE)
    {
        let has_token = match std::str::from_utf8(&body) {
            Ok(text) => text.contains("mcptt-access-token"),
            Err(_) => String::from_utf8_lossy(&body).contains("mcptt-access-token"),
        };
        return Some(format!(
            "{} bytes{}",
            body.len(),
            if has_token {
                ", carries mcptt-access-token"
            } else {
                ""
            }
        ));
    }
    None
}

/// What `from` sent, as the receiving actor records it. `label` names the UE when the
/// Call-ID is not bound in the trace. Actors call [`Trace::observe`](crate::trace::Trace::observe),
/// which calls this only when the trace keeps key headers and texts.
#[must_use]
pub fn observe(msg: &Message, from: Actor, label: &str) -> Observation {
    let headers = msg
        .headers()
        .iter()
        .filter(|(n, _)| KEY_HEADERS.iter().any(|k| k.eq_ignore_ascii_case(n)))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let mut headers: Vec<(String, String)> = headers;
    if let Some(summary) = body_summary(msg) {
        headers.push(("Body".into(), summary));
    }
    Observation {
        from: Some(from),
        ue: label.to_owned(),
        call_id: call_id(msg),
        method: method(msg),
        status: match msg {
            Message::Response(r) => Some(r.status()),
            Message::Request(_) => None,
        },
        first_line: first_line(msg),
        headers,
        // Body and whole-message texts are made by the trace, only if it keeps them.
        wire: Some(WireText {
            message: msg.encode(),
            body: msg.body(),
            max_body: MAX_RECORDED_BODY,
        }),
        ..Observation::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uris_and_users() {
        assert_eq!(uri_of("\"A\" <sip:a@x;lr>;tag=1"), "sip:a@x;lr");
        assert_eq!(uri_of("sip:a@x;tag=1"), "sip:a@x");
        assert_eq!(user_of("sip:ue1@example.com"), "ue1");
        assert_eq!(user_of("sip:example.com"), "example.com");
        for (uri, user) in [
            ("sip:ue1@example.com", "ue1"),
            ("sip:example.com", "example.com"),
            ("ue1@x", "ue1"),
            ("", ""),
            ("a:b:c@d@e", "b:c"),
        ] {
            assert_eq!(user_part(uri), user, "{uri}");
            assert_eq!(user_of(uri), user, "{uri}");
        }
    }

    #[test]
    fn a_response_names_its_cseq_method() {
        let response = |cseq: &str| {
            let text = format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nTo: <sip:a@x>;tag=1\r\n\
                 From: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
            );
            Message::parse(bytes::Bytes::from(text)).unwrap()
        };
        assert_eq!(method_str(&response("1 REGISTER")), "REGISTER");
        assert_eq!(method_str(&response("7 \t NOTIFY")), "NOTIFY");
        assert_eq!(method(&response("2 SUBSCRIBE")), "SUBSCRIBE");
        assert_eq!(method_str(&response("3")), "");
        let request = Message::parse(bytes::Bytes::from_static(
            b"PUBLISH sip:a@x SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\n\
              To: <sip:a@x>\r\nFrom: <sip:a@x>;tag=2\r\nCall-ID: c\r\nCSeq: 9 NOTIFY\r\n\
              Content-Length: 0\r\n\r\n",
        ))
        .unwrap();
        assert_eq!(method_str(&request), "PUBLISH");
    }
}

//! Fuzzes the service-state body parsers (mcptt-info XML, poc-settings XML, service-state JSON,
//! the PUBLISH multipart body) and the server's request handling: no panic, and every parsed
//! value encodes to something that parses back to the same value. Modes 5 and 6 build documents
//! in this crate's own canonical form from fuzzed values, which the parsers read with their
//! template fast paths, and check that the general XML readers (reached by the same document
//! with CRLF between its elements) read them the same.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mcptt_service_state::body::{
    AnswerMode, McpttInfo, PocEntity, PocSettings, PublishBody, ServiceState,
};
use mcptt_service_state::server::{Server, ServerConfig};
use mcptt_service_state::{RegistrationChange, SplitMix64, TokenGrant, TokenValidator};

/// Accepts any token whose text is an MCPTT ID (signature checks are not under test here).
struct AnyToken;

impl TokenValidator for AnyToken {
    fn validate(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
        if token.starts_with("sip:") {
            Ok(TokenGrant {
                mcptt_id: token.to_owned(),
                client_id: None,
                expires_at: now_unix + 60,
            })
        } else {
            Err("not a test token".into())
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 7 {
        0 => {
            if let Ok(v) = McpttInfo::parse(rest) {
                assert_eq!(McpttInfo::parse(v.encode().as_bytes()).ok(), Some(v));
            }
        }
        1 => {
            if let Ok(v) = PocSettings::parse(rest) {
                assert_eq!(PocSettings::parse(v.encode().as_bytes()).ok(), Some(v));
            }
        }
        2 => {
            if let Ok(v) = ServiceState::parse(rest) {
                assert_eq!(ServiceState::parse(&v.encode()).ok(), Some(v));
            }
        }
        3 => {
            // Content-Type on the first line, body after it.
            let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let ct = String::from_utf8_lossy(&rest[..split]);
            let body = rest.get(split + 1..).unwrap_or_default();
            if let Ok(v) = PublishBody::parse(&ct, body) {
                let (ct, bytes) = v.encode("fuzz-boundary-0123");
                assert_eq!(PublishBody::parse(&ct, &bytes).ok(), Some(v));
            }
        }
        5 => {
            let mut fields = rest.split(|b| *b == 0xff).map(text_value);
            let info = McpttInfo {
                access_token: fields.next(),
                request_uri: fields.next(),
                client_id: fields.next(),
            };
            fast_and_general_agree(
                &info.encode(),
                |d| McpttInfo::parse(d).ok(),
                McpttInfo::encode,
            );
        }
        6 => {
            let entities = rest
                .split(|b| *b == 0xff)
                .map(|f| {
                    let (flags, id) = f.split_first().unwrap_or((&0, &[]));
                    let pick = |shift: u8| match (flags >> shift) & 3 {
                        0 => None,
                        1 => Some(false),
                        _ => Some(true),
                    };
                    PocEntity {
                        id: text_value(id),
                        answer_mode: pick(0).map(|a| {
                            if a {
                                AnswerMode::Automatic
                            } else {
                                AnswerMode::Manual
                            }
                        }),
                        incoming_personal_alert_barring: pick(2),
                        allow_session_participation: pick(4),
                    }
                })
                .collect();
            let settings = PocSettings { entities };
            fast_and_general_agree(
                &settings.encode(),
                |d| PocSettings::parse(d).ok(),
                PocSettings::encode,
            );
        }
        _ => {
            // Whole messages into a server that has one registered UE.
            let mut server = Server::new(
                ServerConfig::new("mcptt.example.org", "sip:mcptt@mcptt.example.org"),
                AnyToken,
                SplitMix64(1),
            );
            #[allow(clippy::disallowed_methods)]
            let now = Instant::now();
            server.handle_registration(
                now,
                RegistrationChange {
                    impu: "sip:ue@example.org".into(),
                    instance: None,
                    registered: true,
                },
            );
            for msg in rest.split(|b| *b == 0) {
                server.handle_request_bytes(now, 1_800_000_000, msg);
                server.handle_response_bytes(now, msg);
                while server.poll_transmit().is_some() {}
                while server.poll_event().is_some() {}
            }
            server.handle_timeout(now + Duration::from_secs(100_000));
        }
    }
});

/// A fuzzed value for a canonical document: any text without line breaks (so that every line
/// break of the encoded document sits between elements).
fn text_value(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace(['\r', '\n'], " ")
}

/// `doc` is in the canonical form (template fast path); the same document with CRLF line breaks
/// between its elements goes through the general XML reader. Both must read the same, and what
/// they read must encode to a document that reads back the same.
fn fast_and_general_agree<T: PartialEq + std::fmt::Debug>(
    doc: &str,
    parse: impl Fn(&[u8]) -> Option<T>,
    encode: impl Fn(&T) -> String,
) {
    let fast = parse(doc.as_bytes());
    let general = parse(doc.replace(">\n", ">\r\n").as_bytes());
    assert_eq!(
        fast, general,
        "template and XML readers disagree on {doc:?}"
    );
    if let Some(v) = fast {
        assert_eq!(parse(encode(&v).as_bytes()), Some(v));
    }
}

//! Fuzzes the service-state body parsers (mcptt-info XML, poc-settings XML, service-state JSON,
//! the PUBLISH multipart body) and the server's request handling: no panic, and every parsed
//! value encodes to something that parses back to the same value.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mcptt_service_state::body::{McpttInfo, PocSettings, PublishBody, ServiceState};
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
    match mode % 5 {
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

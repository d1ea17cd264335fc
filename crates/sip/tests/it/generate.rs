//! proptest strategies that write SIP messages as text, so the expected wire form is known.

use proptest::prelude::*;

/// A generated message: its bytes, and what the parser must find in it.
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    pub(crate) bytes: Vec<u8>,
    pub(crate) call_id: String,
    pub(crate) cseq: u32,
    pub(crate) method: String,
    /// `Some(code)` for responses.
    pub(crate) status: Option<u16>,
    /// (name as written, value as written without folding) of the extension headers, in order.
    pub(crate) extra: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,11}"
}

/// A token that is also valid unescaped in a URI parameter (no `%` or backquote).
pub(crate) fn uri_token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!*_+~'-]{0,11}"
}

pub(crate) fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9-]{0,8}){0,3}",
        (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        (1u16..0xffff, 1u16..0xffff).prop_map(|(a, b)| format!("[2001:db8::{a:x}:{b:x}]")),
    ]
}

pub(crate) fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (1u16..=65535).prop_map(|p| format!(":{p}"))
    ]
}

pub(crate) fn sip_uri() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("sip"), Just("sips")],
        proptest::option::of("[a-z0-9][a-z0-9._+-]{0,10}"),
        host(),
        port(),
        proptest::collection::vec(
            (uri_token(), proptest::option::of(uri_token())).prop_map(|(n, v)| match v {
                Some(v) => format!(";{n}={v}"),
                None => format!(";{n}"),
            }),
            0..3,
        ),
    )
        .prop_map(|(scheme, user, host, port, params)| {
            let user = user.map(|u| format!("{u}@")).unwrap_or_default();
            format!("{scheme}:{user}{host}{port}{}", params.concat())
        })
}

/// How a header name is written: full, compact (where one exists), or in random case.
fn name_form(full: &'static str, compact: Option<&'static str>) -> impl Strategy<Value = String> {
    (0u8..3, proptest::collection::vec(any::<bool>(), full.len())).prop_map(move |(how, upper)| {
        match (how, compact) {
            (0, _) => full.to_owned(),
            (1, Some(c)) => c.to_owned(),
            _ => full
                .chars()
                .zip(upper)
                .map(|(c, u)| {
                    if u {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect(),
        }
    })
}

/// Fold a value: some single spaces become CRLF plus a space or tab (RFC 3261 §7.3.1).
fn fold(value: &str, folds: &[bool]) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut i = 0;
    for c in value.chars() {
        if c == ' ' {
            let f = folds.get(i).copied().unwrap_or(false);
            i += 1;
            if f {
                out.push_str(if i % 2 == 0 { "\r\n " } else { "\r\n\t" });
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Extension header value: words of visible characters separated by single spaces.
fn ext_value() -> impl Strategy<Value = String> {
    proptest::collection::vec("[A-Za-z0-9;=.,:@<>/?!#$%&*+_-]{1,12}", 1..5)
        .prop_map(|w| w.join(" "))
}

const METHODS: &[&str] = &[
    "INVITE",
    "REGISTER",
    "OPTIONS",
    "PUBLISH",
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "BYE",
    "X-CUSTOM",
];

/// A whole message with the mandatory headers, extension headers, optional folding and a body.
pub(crate) fn message() -> impl Strategy<Value = Generated> {
    (
        (
            proptest::option::of(100u16..=699),
            proptest::sample::select(METHODS),
            sip_uri(),
            "[A-Za-z0-9 ]{0,20}",
        ),
        (
            sip_uri(),
            sip_uri(),
            token(),
            token(),
            "[A-Za-z0-9.-]{1,24}(@[a-z0-9.]{1,16})?",
        ),
        (
            any::<u32>(),
            0u32..=255,
            host(),
            port(),
            "[A-Za-z0-9.-]{1,16}",
        ),
        proptest::collection::vec(
            (
                token(),
                ext_value(),
                proptest::collection::vec(any::<bool>(), 0..5),
            ),
            0..8,
        ),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(any::<bool>(), 8),
        (
            name_form("Via", Some("v")),
            name_form("From", Some("f")),
            name_form("To", Some("t")),
            name_form("Call-ID", Some("i")),
            name_form("Content-Length", Some("l")),
        ),
    )
        .prop_map(|(start, ids, nums, extras, body, flags, names)| {
            let (status, method, ruri, reason) = start;
            let (from_uri, to_uri, from_tag, to_tag, call_id) = ids;
            let (cseq, max_fwd, via_host, via_port, branch) = nums;
            let (via_n, from_n, to_n, callid_n, cl_n) = names;
            let mut s = String::new();
            match status {
                Some(code) => s.push_str(&format!("SIP/2.0 {code} {}\r\n", reason.trim())),
                None => s.push_str(&format!("{method} {ruri} SIP/2.0\r\n")),
            }
            s.push_str(&format!(
                "{via_n}: SIP/2.0/TLS {via_host}{via_port};branch=z9hG4bK{branch}\r\n"
            ));
            if flags[0] {
                s.push_str(&format!("Max-Forwards: {max_fwd}\r\n"));
            }
            s.push_str(&format!("{from_n}: <{from_uri}>;tag={from_tag}\r\n"));
            if flags[1] {
                s.push_str(&format!("{to_n}: <{to_uri}>;tag={to_tag}\r\n"));
            } else {
                s.push_str(&format!("{to_n}: <{to_uri}>\r\n"));
            }
            s.push_str(&format!("{callid_n}: {call_id}\r\n"));
            s.push_str(&format!("CSeq: {cseq} {method}\r\n"));
            let mut extra = Vec::new();
            for (i, (name, value, folds)) in extras.into_iter().enumerate() {
                // Extension names are prefixed so they never collide with a known header.
                let name = format!("X-{name}");
                s.push_str(&format!("{name}: {}\r\n", fold(&value, &folds)));
                extra.push((name, value));
                if i == 3 && flags[2] {
                    s.push_str("Expires: 3600\r\n");
                }
            }
            s.push_str(&format!("{cl_n}: {}\r\n\r\n", body.len()));
            let mut bytes = s.into_bytes();
            bytes.extend_from_slice(&body);
            Generated {
                bytes,
                call_id,
                cseq,
                method: method.to_owned(),
                status,
                extra,
                body,
            }
        })
}

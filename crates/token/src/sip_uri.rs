//! A small, self-contained check that a claim is a SIP URI with a user part.
//!
//! The token crate does not depend on `mcptt-sip`; this check covers what an
//! MCPTT ID looks like (TS 23.280 §8.1.2: `sip:user@domain`), following the
//! RFC 3261 §25.1 grammar:
//!
//! ```text
//! mcptt-id  = ("sip:" / "sips:") user "@" host [":" port] *(";" param)
//! user      = 1*( unreserved / escaped / "&" / "=" / "+" / "$" / "," / ";" / "?" / "/" )
//!             (";" is left out: it would start a parameter)
//! host      = hostname / IPv4address / "[" IPv6 "]"
//! hostname  = labels of alphanum and "-", "." separated, not starting or ending with "-"
//! param     = 1*paramchar ["=" 1*paramchar]
//! ```
//!
//! The scheme is case-insensitive; a password (`user:pw@`), headers (`?…`),
//! whitespace and anything longer than [`MAX_LEN`] bytes are refused.

/// Longest MCPTT ID accepted, in bytes.
pub const MAX_LEN: usize = 512;

/// Checks that `uri` is a `sip:`/`sips:` URI with a user part (see the module docs).
///
/// # Errors
/// A short description of the first problem.
pub fn check(uri: &str) -> Result<(), &'static str> {
    if uri.len() > MAX_LEN {
        return Err("longer than 512 bytes");
    }
    let lower_prefix = |p: &str| {
        uri.get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    let rest = if lower_prefix("sips:") {
        &uri[5..]
    } else if lower_prefix("sip:") {
        &uri[4..]
    } else {
        return Err("scheme must be sip: or sips:");
    };
    let (user, hostport) = rest.rsplit_once('@').ok_or("user part missing (no '@')")?;
    if user.is_empty() {
        return Err("user part is empty");
    }
    if user.contains(':') {
        return Err("password in the user part");
    }
    check_user(user)?;
    let (hostport, params) = match hostport.split_once(';') {
        Some((h, p)) => (h, Some(p)),
        None => (hostport, None),
    };
    if hostport.contains('?') {
        return Err("URI headers are not allowed");
    }
    let host = check_port(hostport)?;
    check_host(host)?;
    if let Some(params) = params {
        for p in params.split(';') {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() || !name.bytes().all(is_param_char) {
                return Err("malformed URI parameter");
            }
            if value.is_some_and(|v| v.is_empty() || !v.bytes().all(is_param_char)) {
                return Err("malformed URI parameter value");
            }
        }
    }
    Ok(())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || b"[]/:&+$%".contains(&b)
}

fn check_user(user: &str) -> Result<(), &'static str> {
    let b = user.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .ok_or("truncated escape in the user part")?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err("bad escape in the user part");
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(c) || b"&=+$,?/".contains(&c)) {
            return Err("invalid character in the user part");
        }
        i += 1;
    }
    Ok(())
}

fn check_port(hostport: &str) -> Result<&str, &'static str> {
    // An IPv6 reference contains ':' itself: split after its closing ']'.
    let (host, port) = if hostport.starts_with('[') {
        let close = hostport.find(']').ok_or("unterminated IPv6 reference")?;
        let (host, rest) = hostport.split_at(close + 1);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(
                    rest.strip_prefix(':')
                        .ok_or("junk after the IPv6 reference")?,
                ),
            ),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err("malformed port");
        }
        if p.parse::<u32>().map_or(true, |n| n > 65535) {
            return Err("port out of range");
        }
    }
    Ok(host)
}

fn check_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("host is empty");
    }
    if let Some(inner) = host.strip_prefix('[') {
        let v6 = inner
            .strip_suffix(']')
            .ok_or("unterminated IPv6 reference")?;
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(drop)
            .map_err(|_| "invalid IPv6 address");
    }
    if host.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return host
            .parse::<std::net::Ipv4Addr>()
            .map(drop)
            .map_err(|_| "invalid IPv4 address");
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    for label in host.split('.') {
        let lb = label.as_bytes();
        let ok = !lb.is_empty()
            && lb.len() <= 63
            && lb.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && lb.first() != Some(&b'-')
            && lb.last() != Some(&b'-');
        if !ok {
            return Err("invalid host name");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_mcptt_ids() {
        for ok in [
            "sip:alice@mcptt.example",
            "SIP:alice@mcptt.example",
            "sips:alice.b-c_d@example.com:5061",
            "sip:%61lice@example.com",
            "sip:+4912345@ims.example;user=phone",
            "sip:bob@192.0.2.4",
            "sip:bob@[2001:db8::1]:5060",
            "sip:bob@[2001:db8::1]",
            "sip:bob@example.com.",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "alice@example.com",
            "tel:+4912345",
            "sip:example.com",
            "sip:@example.com",
            "sip:alice:secret@example.com",
            "sip:alice@",
            "sip:alice@exa mple.com",
            "sip:al ice@example.com",
            "sip:alice@example.com:99999",
            "sip:alice@example.com:",
            "sip:alice@-example.com",
            "sip:alice@example..com",
            "sip:alice@[::1",
            "sip:alice@[zz::1]",
            "sip:alice@999.1.1.1",
            "sip:alice@example.com?subject=x",
            "sip:alice@example.com;",
            "sip:%6@example.com",
            "sip:alice@example.com;a=",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check(&format!("sip:{}@example.com", "a".repeat(600))).is_err());
    }
}

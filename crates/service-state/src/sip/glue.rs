//! Reading `mcptt-sip` messages into a [`View`] (header values are read from the raw header
//! text so that only the stable core of the `mcptt-sip` API is relied on).

use bytes::Bytes;

use super::View;

/// Canonical long name of a header name (RFC 3261 §7.3.3 compact forms, RFC 6665 `o`/`u`).
fn canonical(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "f" => "from".to_owned(),
        "t" => "to".to_owned(),
        "i" => "call-id".to_owned(),
        "v" => "via".to_owned(),
        "m" => "contact".to_owned(),
        "c" => "content-type".to_owned(),
        "l" => "content-length".to_owned(),
        "o" => "event".to_owned(),
        "u" => "allow-events".to_owned(),
        other => other.to_owned(),
    }
}

/// Splits a header value at top-level commas (not inside quotes or `<>`).
pub(crate) fn split_commas(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let bytes = value.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(value.get(start..i).unwrap_or("").trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(value.get(start..).unwrap_or("").trim());
    out.retain(|s| !s.is_empty());
    out
}

/// The URI and the header parameters of a name-addr / addr-spec value.
pub(crate) fn name_addr(value: &str) -> (String, Vec<(String, String)>) {
    let value = value.trim();
    let (uri, params) = if let Some(open) = value.find('<') {
        let rest = value.get(open + 1..).unwrap_or("");
        match rest.find('>') {
            Some(close) => (
                rest.get(..close).unwrap_or(""),
                rest.get(close + 1..).unwrap_or(""),
            ),
            None => (rest, ""),
        }
    } else {
        // addr-spec form: parameters after the first ';' belong to the header (RFC 3261 §20).
        match value.find(';') {
            Some(i) => (value.get(..i).unwrap_or(""), value.get(i..).unwrap_or("")),
            None => (value, ""),
        }
    };
    (uri.trim().to_owned(), params_of(params))
}

/// `;name=value` parameters (names lower-cased, quotes removed).
pub(crate) fn params_of(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            ),
            None => (p.to_ascii_lowercase(), String::new()),
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Builds a [`View`] from a start line and the raw headers.
pub(crate) fn view_from_parts<'a>(
    method: &str,
    request_uri: &str,
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    body: Bytes,
) -> Result<View, &'static str> {
    let mut v = View {
        method: method.to_owned(),
        request_uri: request_uri.to_owned(),
        status,
        body,
        ..View::default()
    };
    let mut have = (false, false, false, false);
    for (name, value) in headers {
        let value = value.trim();
        match canonical(name).as_str() {
            "via" => v
                .vias
                .extend(split_commas(value).into_iter().map(str::to_owned)),
            "from" => {
                v.from_raw = value.to_owned();
                let (uri, params) = name_addr(value);
                v.from_uri = uri;
                v.from_tag = param(&params, "tag").map(str::to_owned);
                have.0 = true;
            }
            "to" => {
                v.to_raw = value.to_owned();
                let (uri, params) = name_addr(value);
                v.to_uri = uri;
                v.to_tag = param(&params, "tag").map(str::to_owned);
                have.1 = true;
            }
            "call-id" => {
                value.clone_into(&mut v.call_id);
                have.2 = true;
            }
            "cseq" => {
                let mut it = value.split_whitespace();
                v.cseq = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("CSeq number")?;
                v.cseq_method = it.next().ok_or("CSeq method")?.to_owned();
                have.3 = true;
            }
            "expires" => v.expires = Some(value.parse().map_err(|_| "Expires delta-seconds")?),
            "min-expires" => v.min_expires = value.parse().ok(),
            "event" => {
                let mut parts = value.splitn(2, ';');
                let package = parts.next().unwrap_or("").trim().to_owned();
                let params = params_of(parts.next().unwrap_or(""));
                v.event = Some((package, param(&params, "id").map(str::to_owned)));
            }
            "subscription-state" => {
                let mut parts = value.splitn(2, ';');
                let state = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let params = params_of(parts.next().unwrap_or(""));
                v.subscription_state = Some((
                    state,
                    param(&params, "reason").map(str::to_owned),
                    param(&params, "expires").and_then(|e| e.parse().ok()),
                ));
            }
            "sip-if-match" => v.sip_if_match = Some(value.to_owned()),
            "sip-etag" => v.sip_etag = Some(value.to_owned()),
            "warning" if v.warning.is_none() => v.warning = Some(value.to_owned()),
            "content-type" => v.content_type = Some(value.to_owned()),
            "p-asserted-identity" => v
                .pai
                .extend(split_commas(value).into_iter().map(|a| name_addr(a).0)),
            "contact" if v.contact.is_none() => {
                v.contact = split_commas(value).first().map(|c| name_addr(c).0);
            }
            "record-route" => v
                .record_route
                .extend(split_commas(value).into_iter().map(str::to_owned)),
            _ => {}
        }
    }
    match have {
        (true, true, true, true) => Ok(v),
        (false, ..) => Err("From header"),
        (_, false, ..) => Err("To header"),
        (_, _, false, _) => Err("Call-ID header"),
        _ => Err("CSeq header"),
    }
}

/// Reads an `mcptt-sip` request.
pub(crate) fn view_request(req: &mcptt_sip::Request) -> Result<View, &'static str> {
    view_from_parts(
        req.method().as_str(),
        req.uri().as_str(),
        0,
        req.headers().iter(),
        req.body(),
    )
}

/// Reads an `mcptt-sip` response.
pub(crate) fn view_response(resp: &mcptt_sip::Response) -> Result<View, &'static str> {
    view_from_parts("", "", resp.status(), resp.headers().iter(), resp.body())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_value_helpers() {
        assert_eq!(
            split_commas("<sip:a@b;x=1,2>;q=1, \"x,y\" <sip:c@d>"),
            vec!["<sip:a@b;x=1,2>;q=1", "\"x,y\" <sip:c@d>"]
        );
        let (uri, params) = name_addr("\"Alice\" <sip:alice@example.org;transport=tls>;tag=abc");
        assert_eq!(uri, "sip:alice@example.org;transport=tls");
        assert_eq!(param(&params, "tag"), Some("abc"));
        let (uri, params) = name_addr("sip:bob@example.org;tag=9");
        assert_eq!(uri, "sip:bob@example.org");
        assert_eq!(param(&params, "tag"), Some("9"));
    }
}

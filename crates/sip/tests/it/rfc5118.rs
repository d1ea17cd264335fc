//! RFC 5118 IPv6 torture messages, driven by `tests/data/rfc5118.expect`.

use mcptt_sip::{Bytes, Error, Message};

use crate::common::{check_error, data, read, table, testdata};
use crate::rfc4475::accept;

fn verdict(name: &str) -> (String, String) {
    let rows = table(&data("rfc5118.expect"), 3);
    let r = rows
        .into_iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("{name}: no row in rfc5118.expect"));
    (r[1].clone(), r[2].clone())
}

fn reject(who: &str, input: &Bytes, mentions: &str) {
    let err = match Message::parse(input.clone()) {
        Err(e) => e,
        Ok(m) => m
            .validate()
            .err()
            .unwrap_or_else(|| panic!("{who}: accepted, must be rejected")),
    };
    check_error(who, &err, "400", mentions).unwrap();
}

/// The CRLF wire form: the binding verdict, plus typed checks.
fn run(name: &str) {
    let (verdict, mentions) = verdict(name);
    let input = read(&testdata(&format!("rfc5118/wire-crlf/{name}.dat")));
    match verdict.as_str() {
        "accept" => {
            let m = accept(name, &input);
            typed(name, &m);
        }
        "reject" => reject(name, &input, &mentions),
        other => panic!("{name}: unknown verdict {other}"),
    }
}

#[test]
fn every_vector_has_exactly_one_row() {
    let mut names: Vec<String> = std::fs::read_dir(testdata("rfc5118"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".dat").map(str::to_owned)
        })
        .collect();
    names.sort();
    let mut rows: Vec<String> = table(&data("rfc5118.expect"), 3)
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    rows.sort();
    assert_eq!(names, rows);
    assert_eq!(names.len(), 12);
    let accepts = table(&data("rfc5118.expect"), 3)
        .iter()
        .filter(|r| r[1] == "accept")
        .count();
    assert_eq!(accepts, 10, "RFC 5118: 10 accepts, 2 rejects");
}

macro_rules! vectors {
    ($($f:ident = $name:literal;)*) => {$(
        #[test]
        fn $f() {
            run($name);
        }
    )*};
}

vectors! {
    ipv6_good = "ipv6-good";
    ipv6_bad = "ipv6-bad";
    port_ambiguous = "port-ambiguous";
    port_unambiguous = "port-unambiguous";
    via_received_param_with_delim = "via-received-param-with-delim";
    via_received_param_no_delim = "via-received-param-no-delim";
    ipv6_in_sdp = "ipv6-in-sdp";
    mult_ip_in_header = "mult-ip-in-header";
    mult_ip_in_sdp = "mult-ip-in-sdp";
    ipv4_mapped_ipv6 = "ipv4-mapped-ipv6";
    ipv6_bug_abnf_3_colons = "ipv6-bug-abnf-3-colons";
    ipv6_correct_abnf_2_colons = "ipv6-correct-abnf-2-colons";
}

fn ruri(m: &Message) -> mcptt_sip::Uri {
    match m {
        Message::Request(r) => r.uri().clone(),
        Message::Response(_) => panic!("expected a request"),
    }
}

fn typed(name: &str, m: &Message) {
    match name {
        "ipv6-good" => {
            assert_eq!(ruri(m).host(), "[2001:db8::10]");
            assert_eq!(ruri(m).port(), None);
            assert_eq!(m.top_via().unwrap().host(), "[2001:db8::9:1]");
            let c = m.contacts().unwrap();
            assert_eq!(c[0].uri().unwrap().host(), "[2001:db8::1]");
        }
        "port-ambiguous" => {
            assert_eq!(ruri(m).host(), "[2001:db8::10:5070]");
            assert_eq!(ruri(m).port(), None);
        }
        "port-unambiguous" => {
            assert_eq!(ruri(m).host(), "[2001:db8::10]");
            assert_eq!(ruri(m).port(), Some(5070));
        }
        "via-received-param-with-delim" => {
            let v = m.top_via().unwrap();
            assert_eq!(v.received(), Some("[2001:db8::9:255]"));
            assert_eq!(v.branch(), Some("z9hG4bKas3-111"));
        }
        "via-received-param-no-delim" => {
            let v = m.top_via().unwrap();
            assert_eq!(v.received(), Some("2001:db8::9:255"));
            assert_eq!(v.branch(), Some("z9hG4bKas3"));
        }
        "ipv6-in-sdp" => {
            // Content-Length 241 of the 251 body bytes that are there: a datagram parse takes 241.
            assert_eq!(m.body().len(), 241);
        }
        "mult-ip-in-header" => {
            let vias = m.via().unwrap();
            let hosts: Vec<&str> = vias.iter().map(|v| v.host()).collect();
            assert_eq!(hosts, ["[2001:db8::9:1]", "192.0.2.1", "[2001:db8::9:255]"]);
            assert_eq!(vias[0].port(), Some(6050));
            assert_eq!(vias[2].received(), Some("192.0.2.200"));
        }
        "ipv4-mapped-ipv6" => {
            let v = m.top_via().unwrap();
            assert_eq!(v.host(), "[::ffff:192.0.2.10]");
            assert_eq!(v.port(), Some(19823));
            let c = m.contacts().unwrap();
            assert_eq!(c[0].uri().unwrap().host(), "[::ffff:192.0.2.2]");
        }
        "ipv6-correct-abnf-2-colons" => {
            assert_eq!(ruri(m).host(), "[2001:db8::192.0.2.1]");
        }
        _ => {}
    }
}

/// The archive's own bytes use bare LF (and two lack the blank line). The parser takes them:
/// every accept parses, with the same Call-ID and Via hosts as the CRLF form; both rejects are
/// rejected. `validate()` passes too, except where INDEX.md lists a Content-Length larger than
/// the LF body (ipv6-in-sdp 268 > 242, mult-ip-in-sdp 181 > 180): that is `BodyTruncated`, as
/// for RFC 4475 clerr.
#[test]
fn archive_lf_form_agrees_with_crlf_form() {
    for row in table(&data("rfc5118.expect"), 3) {
        let name = row[0].as_str();
        let lf = read(&testdata(&format!("rfc5118/{name}.dat")));
        let crlf = read(&testdata(&format!("rfc5118/wire-crlf/{name}.dat")));
        let parsed = Message::parse(lf);
        if row[1] == "reject" {
            let validated = parsed.and_then(|m| m.validate());
            assert!(
                validated.is_err(),
                "{name}: LF form accepted, must be rejected"
            );
            continue;
        }
        let lf_msg = parsed.unwrap_or_else(|e| panic!("{name}: LF form does not parse: {e}"));
        match (name, lf_msg.validate()) {
            (_, Ok(())) => {}
            (
                "ipv6-in-sdp",
                Err(Error::BodyTruncated {
                    declared: 268,
                    available: 242,
                }),
            )
            | (
                "mult-ip-in-sdp",
                Err(Error::BodyTruncated {
                    declared: 181,
                    available: 180,
                }),
            ) => {}
            (_, Err(e)) => panic!("{name}: LF form fails validate(): {e}"),
        }
        let crlf_msg = Message::parse(crlf).unwrap();
        assert_eq!(lf_msg.call_id(), crlf_msg.call_id(), "{name}");
        let hosts = |m: &Message| -> Vec<String> {
            m.via()
                .unwrap()
                .iter()
                .map(|v| v.host().to_owned())
                .collect()
        };
        assert_eq!(hosts(&lf_msg), hosts(&crlf_msg), "{name}");
    }
}

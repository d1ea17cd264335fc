//! Sign-in loop for profiling (`valgrind --tool=callgrind --toggle-collect='*sign_ins*'`):
//! the bench's PUBLISH (multipart mcptt-info + poc-settings) + SUBSCRIBE + the NOTIFY's 200 for
//! N UEs (first argument, default 2000), messages built before the measured part.
//!
//! `cargo build --release -p mcptt-service-state --example profile_sign_in`; with a second
//! argument `memory`, it prints the resident-set growth per UE instead (as the bench measures
//! it: each UE registered and signed in, messages built per UE); with `again`, it signs the N
//! UEs in a second time after their subscriptions ended, as the bench's criterion loop does
//! (profile that with `--toggle-collect='*resign*' --toggle-collect='*sign_ins_answers*'`).

#![allow(clippy::disallowed_methods)] // the example owns the clock
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use mcptt_service_state::body::{AnswerMode, McpttInfo, PocEntity, PocSettings, PublishBody};
use mcptt_service_state::server::{Server, ServerConfig};
use mcptt_service_state::{RegistrationChange, SplitMix64, TokenGrant, TokenValidator};

const PSI: &str = "sip:mcptt-server@mcptt.example.org";
const NOW_UNIX: u64 = 1_800_000_000;

/// Claims from `tok|<mcptt_id>|<exp>`: no signature.
struct PlainTokens;

impl TokenValidator for PlainTokens {
    fn validate(
        &self,
        token: &str,
        _now_unix: u64,
    ) -> Result<TokenGrant, Box<dyn std::error::Error + Send + Sync>> {
        let mut it = token.splitn(3, '|');
        let (Some("tok"), Some(id), Some(exp)) = (it.next(), it.next(), it.next()) else {
            return Err("not a test token".into());
        };
        Ok(TokenGrant {
            mcptt_id: id.to_owned(),
            client_id: Some("mcptt-client".into()),
            expires_at: exp.parse()?,
        })
    }
}

fn impu(i: usize) -> String {
    format!("sip:ue{i:06}@example.org")
}

fn publish(i: usize) -> Vec<u8> {
    let body = PublishBody {
        info: Some(McpttInfo {
            access_token: Some(format!(
                "tok|sip:user{i:06}@mcptt.example.org|{}",
                NOW_UNIX + 3600
            )),
            client_id: Some("mcptt-client".into()),
            request_uri: Some(PSI.into()),
        }),
        settings: Some(PocSettings {
            entities: vec![PocEntity {
                id: format!("urn:uuid:00000000-0000-0000-0000-{i:012}"),
                answer_mode: Some(AnswerMode::Automatic),
                ..PocEntity::default()
            }],
        }),
    };
    let (ct, body) = body.encode("boundary1");
    let mut m = format!(
        "PUBLISH {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS core.example.org;branch=z9hG4bKp{i}\r\n\
Via: SIP/2.0/TLS ue{i}.example.org;branch=z9hG4bKu{i}\r\nMax-Forwards: 69\r\n\
From: <{u}>;tag=pf{i}\r\nTo: <{u}>\r\nCall-ID: pub-{i}@ue.example.org\r\nCSeq: 1 PUBLISH\r\n\
P-Asserted-Identity: <{u}>\r\nEvent: poc-settings\r\nExpires: 3600\r\n\
Content-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len(),
        u = impu(i)
    )
    .into_bytes();
    m.extend_from_slice(&body);
    m
}

fn subscribe(i: usize) -> Vec<u8> {
    format!(
        "SUBSCRIBE {PSI} SIP/2.0\r\nVia: SIP/2.0/TLS core.example.org;branch=z9hG4bKs{i}\r\n\
Via: SIP/2.0/TLS ue{i}.example.org;branch=z9hG4bKv{i}\r\nMax-Forwards: 69\r\n\
Record-Route: <sip:core.example.org;transport=tls;lr>\r\n\
From: <{u}>;tag=sf{i}\r\nTo: <{PSI}>\r\nCall-ID: sub-{i}@ue.example.org\r\nCSeq: 1 SUBSCRIBE\r\n\
P-Asserted-Identity: <{u}>\r\nContact: <sip:ue{i}.example.org;transport=tls>\r\n\
Event: mcptt-service-state\r\nAccept: application/vnd.mcptt-service-state+json\r\nExpires: 3600\r\n\
Content-Length: 0\r\n\r\n",
        u = impu(i)
    )
    .into_bytes()
}

/// The UE's 200 to a NOTIFY.
fn ok_for(notify: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(notify);
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for line in text.split("\r\n").skip(1) {
        let name = line.split(':').next().unwrap_or("");
        if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name) {
            out.push_str(line);
            out.push_str("\r\n");
        }
        if line.is_empty() {
            break;
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// A server with room for `n` UEs (and their sign-ins again).
fn server(n: usize) -> Server<PlainTokens, SplitMix64> {
    let mut config = ServerConfig::new("mcptt.example.org", PSI);
    config.max_ues = 2 * n + 10;
    Server::new(config, PlainTokens, SplitMix64(1))
}

/// UE `i` registered (as the registrar reports it).
fn register(server: &mut Server<PlainTokens, SplitMix64>, now: Instant, i: usize) {
    server.handle_registration(
        now,
        RegistrationChange {
            impu: impu(i),
            instance: Some(format!("<urn:uuid:00000000-0000-0000-0000-{i:012}>")),
            registered: true,
        },
    );
}

/// PUBLISH + SUBSCRIBE for every message pair; returns the NOTIFYs, end to end, and where
/// each ends.
#[inline(never)]
fn sign_ins(
    server: &mut Server<PlainTokens, SplitMix64>,
    now: Instant,
    msgs: &[(Vec<u8>, Vec<u8>)],
) -> (Vec<u8>, Vec<usize>) {
    let (mut notifies, mut ends) = (Vec::with_capacity(msgs.len() * 1024), Vec::new());
    ends.reserve(msgs.len());
    let mut out = Vec::with_capacity(4096);
    for (p, s) in msgs {
        server.handle_request_bytes(now, NOW_UNIX, p);
        out.clear();
        server.poll_transmit_into(&mut out).expect("200 to PUBLISH");
        assert!(out.starts_with(b"SIP/2.0 200"));
        server.handle_request_bytes(now, NOW_UNIX, s);
        out.clear();
        server
            .poll_transmit_into(&mut out)
            .expect("200 to SUBSCRIBE");
        assert!(out.starts_with(b"SIP/2.0 200"));
        server.poll_transmit_into(&mut notifies).expect("NOTIFY");
        ends.push(notifies.len());
        while server.poll_event().is_some() {}
    }
    (notifies, ends)
}

/// The NOTIFYs' 200s.
#[inline(never)]
fn sign_ins_answers(
    server: &mut Server<PlainTokens, SplitMix64>,
    now: Instant,
    responses: &[Vec<u8>],
) {
    for r in responses {
        server.handle_response_bytes(now, r);
    }
}

/// On-CPU time of this thread in ns (`/proc/thread-self/schedstat`; 0 where unavailable).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident set size in bytes (`/proc/self/status`), as the bench reads it.
fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The bench's memory measure: RSS growth over N UEs each registered and signed in (messages
/// built per UE), per UE.
fn memory(n: usize) {
    let now = Instant::now();
    let before = rss_bytes();
    let mut server = server(n);
    let mut out = Vec::with_capacity(4096);
    for i in 0..n {
        register(&mut server, now, i);
        out.clear();
        server.handle_request_bytes(now, NOW_UNIX, &publish(i));
        server.poll_transmit_into(&mut out).expect("200 to PUBLISH");
        server.handle_request_bytes(now, NOW_UNIX, &subscribe(i));
        server
            .poll_transmit_into(&mut out)
            .expect("200 to SUBSCRIBE");
        let start = out.len();
        server.poll_transmit_into(&mut out).expect("NOTIFY");
        let ok = ok_for(&out[start..]);
        server.handle_response_bytes(now, &ok);
        while server.poll_event().is_some() {}
    }
    let after = rss_bytes();
    assert_eq!(server.subscription_count(), n);
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "{n} UEs: RSS +{} bytes = {} bytes per UE",
            a - b,
            (a - b) / n
        );
    }
}

/// The dialog tag the server gave in its 200 to a SUBSCRIBE.
fn server_tag(ok: &[u8]) -> String {
    String::from_utf8_lossy(ok)
        .split("\r\n")
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split("tag=").nth(1))
        .unwrap_or_default()
        .to_owned()
}

/// The bench's criterion loop: sign-ins again on UEs signed in before (a new PUBLISH without
/// SIP-If-Match, a SUBSCRIBE in a new dialog, the NOTIFY's 200) after their subscriptions
/// ended, the population staying at N.
#[inline(never)]
fn resign_round(
    server: &mut Server<PlainTokens, SplitMix64>,
    now: Instant,
    msgs: &[(Vec<u8>, Vec<u8>)],
) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(4096);
    let mut notifies = Vec::with_capacity(msgs.len());
    for (p, s) in msgs {
        server.handle_request_bytes(now, NOW_UNIX, p);
        out.clear();
        server.poll_transmit_into(&mut out).expect("200 to PUBLISH");
        server.handle_request_bytes(now, NOW_UNIX, s);
        out.clear();
        server
            .poll_transmit_into(&mut out)
            .expect("200 to SUBSCRIBE");
        let mut notify = Vec::with_capacity(1024);
        server.poll_transmit_into(&mut notify).expect("NOTIFY");
        notifies.push(notify);
        while server.poll_event().is_some() {}
    }
    notifies
}

/// Sign-ins again (profile with `--toggle-collect='*resign*' --toggle-collect='*sign_ins_answers*'`).
fn again(n: usize) {
    let now = Instant::now();
    let mut server = server(n);
    let mut out = Vec::with_capacity(4096);
    for i in 0..n {
        register(&mut server, now, i);
        server.handle_request_bytes(now, NOW_UNIX, &publish(i));
        while server.poll_transmit().is_some() {}
        let sub = subscribe(i);
        server.handle_request_bytes(now, NOW_UNIX, &sub);
        out.clear();
        server
            .poll_transmit_into(&mut out)
            .expect("200 to SUBSCRIBE");
        let tag = server_tag(&out);
        out.clear();
        server.poll_transmit_into(&mut out).expect("NOTIFY");
        server.handle_response_bytes(now, &ok_for(&out));
        // Unsubscribed: the population keeps its publications only.
        let bye = String::from_utf8_lossy(&sub)
            .replace("CSeq: 1 SUBSCRIBE", "CSeq: 2 SUBSCRIBE")
            .replace("Expires: 3600", "Expires: 0")
            .replace(&format!("To: <{PSI}>"), &format!("To: <{PSI}>;tag={tag}"));
        server.handle_request_bytes(now, NOW_UNIX, bye.as_bytes());
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
    }
    let msgs: Vec<_> = (0..n)
        .map(|i| {
            let sub = String::from_utf8_lossy(&subscribe(i))
                .replace(&format!("sub-{i}@"), &format!("sub-{i}-1@"))
                .into_bytes();
            (publish(i), sub)
        })
        .collect();
    let (t, c) = (Instant::now(), thread_cpu_ns());
    let notifies = resign_round(&mut server, now, &msgs);
    let (spent, cpu) = (t.elapsed(), thread_cpu_ns() - c);
    let oks: Vec<_> = notifies.iter().map(|m| ok_for(m)).collect();
    let (t, c) = (Instant::now(), thread_cpu_ns());
    sign_ins_answers(&mut server, now, &oks);
    let (spent, cpu) = (spent + t.elapsed(), cpu + (thread_cpu_ns() - c));
    assert_eq!(server.subscription_count(), n);
    println!(
        "{n} sign-ins again: {:?} wall, {} ns thread CPU per sign-in",
        spent / u32::try_from(n.max(1)).unwrap_or(u32::MAX),
        cpu / n.max(1) as u64
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    match std::env::args().nth(2).as_deref() {
        Some("memory") => return memory(n),
        Some("again") => return again(n),
        _ => {}
    }
    let now = Instant::now();
    let mut server = server(n);
    for i in 0..n {
        register(&mut server, now, i);
    }
    let msgs: Vec<_> = (0..n).map(|i| (publish(i), subscribe(i))).collect();
    let (t, c) = (Instant::now(), thread_cpu_ns());
    let notifies = sign_ins(&mut server, now, &msgs);
    let (spent, cpu) = (t.elapsed(), thread_cpu_ns() - c);
    let (notifies, ends) = notifies;
    let starts = std::iter::once(0).chain(ends.iter().copied());
    let responses: Vec<_> = starts
        .zip(&ends)
        .map(|(start, &end)| ok_for(&notifies[start..end]))
        .collect();
    let (t, c) = (Instant::now(), thread_cpu_ns());
    sign_ins_answers(&mut server, now, &responses);
    let (spent, cpu) = (spent + t.elapsed(), cpu + (thread_cpu_ns() - c));
    assert_eq!(server.subscription_count(), n);
    println!(
        "{n} sign-ins: {:?} wall, {} ns thread CPU per sign-in",
        spent / u32::try_from(n.max(1)).unwrap_or(u32::MAX),
        cpu / n.max(1) as u64
    );
}

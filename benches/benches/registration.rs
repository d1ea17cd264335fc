//! `mcptt-registration` with 100,000 registered UEs:
//! - memory per binding beyond the stored REGISTER bytes (counting global allocator),
//! - registrations per second through the sans-IO registrar, parsing excluded (the
//!   REGISTERs are extracted once up front; response building and store writes included),
//! - `handle_timeout` cost when 10% of the bindings expire at the same instant.
//!
//! There is no peer registrar crate to run side by side; the figures stand alone.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::alloc::System;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mcptt_registration::{
    ContactSpec, Contacts, IdentityMap, RegisterRequest, Registrar, RegistrarConfig,
    RegistrationStore,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const UES: usize = 100_000;
const PEER: &str = "ue-peer";

fn aor(i: usize) -> String {
    format!("sip:user{i:06}@mcptt.example.com")
}

/// A realistic MCPTT UE REGISTER (DESIGN.md §3), already extracted: what the registrar
/// sees after parsing.
fn request(i: usize, cseq: u32, expires: u32) -> RegisterRequest {
    let aor = aor(i);
    let uri = format!(
        "sip:user{i:06}@10.{}.{}.{}:5061;transport=tls",
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255
    );
    let instance = format!("<urn:uuid:00000000-0000-1000-8000-{i:012}>");
    let contact = format!(
        "<{uri}>;+sip.instance=\"{instance}\";+g.3gpp.mcptt;+g.3gpp.icsi-ref=\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\";expires={expires}"
    );
    let call_id = format!("{i:016x}@10.0.0.1");
    let raw = format!(
        "REGISTER sip:mcptt.example.com SIP/2.0\r\nVia: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bK{i:x}{cseq}\r\nMax-Forwards: 70\r\nFrom: <{aor}>;tag={i:x}\r\nTo: <{aor}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\nSupported: path, gruu, outbound\r\nUser-Agent: mcptt-bench\r\nContent-Length: 0\r\n\r\n"
    );
    RegisterRequest {
        aor,
        call_id,
        cseq,
        expires: None,
        contacts: Contacts::List(vec![ContactSpec {
            value: format!("<{uri}>;+sip.instance=\"{instance}\";+g.3gpp.mcptt"),
            uri,
            expires: Some(expires),
            instance: Some(instance),
            reg_id: None,
            params: vec![
                (
                    "+sip.instance".into(),
                    Some(format!("\"<urn:uuid:00000000-0000-1000-8000-{i:012}>\"")),
                ),
                ("+g.3gpp.mcptt".into(), None),
            ],
        }]),
        raw: Bytes::from(raw),
    }
}

fn config() -> RegistrarConfig {
    let mut identities = IdentityMap::new();
    for i in 0..UES {
        identities.insert(PEER, &aor(i));
    }
    RegistrarConfig {
        identities,
        max_expires: 7200,
        min_expires: 60,
        ..RegistrarConfig::default()
    }
}

fn registered(cfg: &RegistrarConfig, reqs: &[RegisterRequest], now: Instant) -> Registrar {
    let mut r = Registrar::new(cfg.clone(), 1);
    for q in reqs {
        r.handle_register_request(now, PEER, q).expect("registered");
    }
    while r.poll_event().is_some() {}
    r
}

#[allow(clippy::disallowed_methods)] // benches own the clock
fn origin() -> Instant {
    Instant::now()
}

fn memory_per_binding(cfg: &RegistrarConfig, reqs: &[RegisterRequest], now: Instant) {
    let message_bytes: usize = reqs.iter().map(|q| q.raw.len()).sum();
    let cfg = cfg.clone(); // the configuration (identity map) is not binding memory
    let region = Region::new(GLOBAL);
    let mut r = Registrar::new(cfg, 1);
    for q in reqs {
        r.handle_register_request(now, PEER, q).expect("registered");
        // A caller drains events as they come; an undrained queue is not binding memory.
        while r.poll_event().is_some() {}
    }
    let s = region.change();
    let net = s.bytes_allocated.saturating_sub(s.bytes_deallocated);
    assert_eq!(r.store().binding_count(), UES);
    // The REGISTER bytes were allocated before the region (the binding shares them), so
    // `net` is the registrar's own memory.
    println!(
        "registration/memory: {UES} bindings, {net} bytes live in the registrar = {} bytes per binding beyond the stored message bytes ({} bytes per REGISTER kept by reference); {} allocations per registration",
        net / UES,
        message_bytes / UES,
        s.allocations / UES
    );
    drop(r);
}

/// CPU time of this thread in ns (`/proc/thread-self/schedstat`, first field): unlike the
/// wall clock it does not count time spent waiting for a core on a loaded machine.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One-shot figures on thread CPU time, printed next to criterion's wall-clock ones.
fn cpu_figures(cfg: &RegistrarConfig, reqs: &[RegisterRequest], t0: Instant) {
    let Some(start) = cpu_ns() else {
        println!("registration/cpu: /proc/thread-self/schedstat not available");
        return;
    };
    let mut r = Registrar::new(cfg.clone(), 1);
    for q in reqs {
        r.handle_register_request(t0, PEER, q).expect("registered");
        while r.poll_event().is_some() {}
    }
    let initial = cpu_ns().unwrap_or(start) - start;
    let mut refresh: Vec<RegisterRequest> = (0..UES).map(|i| request(i, 2, 3600)).collect();
    let start = cpu_ns().unwrap_or(0);
    for q in &mut refresh {
        r.handle_register_request(t0, PEER, q).expect("refreshed");
        while r.poll_event().is_some() {}
    }
    let refreshed = cpu_ns().unwrap_or(start) - start;
    drop(r);
    let mixed: Vec<RegisterRequest> = (0..UES)
        .map(|i| request(i, 1, if i % 10 == 0 { 60 } else { 3600 }))
        .collect();
    let mut r = registered(cfg, &mixed, t0);
    let start = cpu_ns().unwrap_or(0);
    r.handle_timeout(t0 + Duration::from_secs(60));
    let expiry = cpu_ns().unwrap_or(start) - start;
    let mut n = 0;
    while r.poll_event().is_some() {
        n += 1;
    }
    assert_eq!(n, UES / 10);
    let per_sec = |ns: u64| (UES as u64 * 1_000_000_000).checked_div(ns).unwrap_or(0);
    println!(
        "registration/cpu: {UES} initial registrations {:.1} ms CPU = {} /s; {UES} refreshes {:.1} ms CPU = {} /s; handle_timeout expiring {} of {UES}: {:.1} ms CPU = {:.2} us per expiry",
        initial as f64 / 1e6,
        per_sec(initial),
        refreshed as f64 / 1e6,
        per_sec(refreshed),
        UES / 10,
        expiry as f64 / 1e6,
        expiry as f64 / 1e3 / (UES / 10) as f64
    );
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    let t0 = origin();
    let reqs: Vec<RegisterRequest> = (0..UES).map(|i| request(i, 1, 3600)).collect();
    memory_per_binding(&cfg, &reqs, t0);
    cpu_figures(&cfg, &reqs, t0);

    let mut g = c.benchmark_group("registration");
    g.sample_size(10);

    // Initial registration of 100,000 UEs into an empty registrar.
    g.throughput(Throughput::Elements(UES as u64));
    g.bench_function("register_100k_initial", |b| {
        b.iter_batched(
            || Registrar::new(cfg.clone(), 1),
            |mut r| {
                for q in &reqs {
                    r.handle_register_request(t0, PEER, q).expect("registered");
                }
                while r.poll_event().is_some() {}
                r
            },
            BatchSize::PerIteration,
        );
    });

    // Refreshes against a registrar that already holds 100,000 UEs.
    let mut r = registered(&cfg, &reqs, t0);
    let mut refresh: Vec<RegisterRequest> = (0..UES).map(|i| request(i, 2, 3600)).collect();
    let mut next = 0usize;
    g.throughput(Throughput::Elements(1));
    g.bench_function("refresh_with_100k_registered", |b| {
        b.iter(|| {
            let q = &mut refresh[next];
            q.cseq += 1;
            next = (next + 1) % UES;
            let listed = r.handle_register_request(t0, PEER, q).expect("refreshed");
            while r.poll_event().is_some() {}
            listed
        });
    });

    // handle_timeout when 10% of 100,000 bindings expire at the same instant.
    let mixed: Vec<RegisterRequest> = (0..UES)
        .map(|i| request(i, 1, if i % 10 == 0 { 60 } else { 3600 }))
        .collect();
    g.throughput(Throughput::Elements((UES / 10) as u64));
    g.bench_function("handle_timeout_10k_of_100k_expire", |b| {
        b.iter_batched(
            || registered(&cfg, &mixed, t0),
            |mut r| {
                r.handle_timeout(t0 + Duration::from_secs(60));
                let mut n = 0;
                while r.poll_event().is_some() {
                    n += 1;
                }
                assert_eq!(n, UES / 10);
                r
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Access-token validation: mcptt-token against raw ring signature
//! verification of the same signing input and against jsonwebtoken
//! (aws-lc-rs backend), one group per algorithm; plus a cache hit.
//!
//! Run: `cargo bench -p mcptt-benches --bench token`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcptt_token::{
    AccessTokenClaims, Algorithm, JwkSet, KeyStore, Signer, SigningKey, Validator, ValidatorConfig,
};
use ring::signature;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/token/tests/data/");
const ISS: &str = "https://idms.mcptt.example";
const AUD: &str = "sip:mcptt-server@mcptt.example";
const NOW: u64 = 1_800_000_000;

/// A realistic MCPTT access token's claims (about 580 bytes signed with ES256).
fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISS.into(),
        sub: "c1f4a7de-59b3-4a7e-8f43-0b2f3c9d7e11".into(),
        aud: vec![AUD.into()],
        exp: NOW + 3600,
        iat: NOW - 5,
        jti: "8d3f2b6a-1c4e-4f9a-b7d2-5e6f708192a3".into(),
        client_id: "mcptt-client".into(),
        scope: "openid 3gpp:mcptt:ptt_server".into(),
        mcptt_id: "sip:alice@mcptt.example".into(),
        ..Default::default()
    }
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct JwtClaims {
    sub: String,
    mcptt_id: String,
    client_id: String,
    scope: String,
    jti: String,
}

fn bench_alg(c: &mut Criterion, alg: Algorithm, pk8: &str) {
    let der = std::fs::read(format!("{DATA}{pk8}")).unwrap();
    let key = SigningKey::from_pkcs8(alg, "bench-key", &der).unwrap();
    let jwk = key.public_jwk();
    let jwk_json: serde_json::Value = serde_json::from_str(&jwk.to_json()).unwrap();
    let token = Signer::new(key).sign_access_token(&claims()).unwrap();
    let set = JwkSet::from_keys([jwk]).unwrap();
    let config = ValidatorConfig::new(ISS, AUD);
    let validator = Validator::new(config.clone(), KeyStore::new(set.clone())).unwrap();
    assert!(validator.validate_access_token(&token, NOW).is_ok());

    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let b64 = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk_json[name].as_str().unwrap())
            .unwrap()
    };

    // jsonwebtoken: same key from JWK components, issuer/audience/exp checked.
    let (jwt_alg, jwt_key) = match alg {
        Algorithm::Es256 => (
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::DecodingKey::from_ec_components(
                jwk_json["x"].as_str().unwrap(),
                jwk_json["y"].as_str().unwrap(),
            )
            .unwrap(),
        ),
        _ => (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::DecodingKey::from_rsa_components(
                jwk_json["n"].as_str().unwrap(),
                jwk_json["e"].as_str().unwrap(),
            )
            .unwrap(),
        ),
    };
    let mut validation = jsonwebtoken::Validation::new(jwt_alg);
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // jsonwebtoken reads the system clock; the token's exp is in 2027, far ahead of it.
    validation.validate_exp = false;
    assert!(jsonwebtoken::decode::<JwtClaims>(&token, &jwt_key, &validation).is_ok());

    let mut g = c.benchmark_group(format!("token_{}", alg.as_str().to_lowercase()));
    g.throughput(Throughput::Bytes(token.len() as u64));
    g.bench_function("mcptt-token validate", |b| {
        b.iter(|| {
            validator
                .validate_access_token(black_box(&token), NOW)
                .unwrap()
        })
    });
    let mut point = vec![4u8];
    let (n, e) = match alg {
        Algorithm::Es256 => {
            point.extend(b64("x"));
            point.extend(b64("y"));
            (Vec::new(), Vec::new())
        }
        _ => (b64("n"), b64("e")),
    };
    let ring_verify = || match alg {
        Algorithm::Es256 => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                .verify(black_box(signing_input.as_bytes()), black_box(&sig))
                .unwrap()
        }
        _ => signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                black_box(signing_input.as_bytes()),
                black_box(&sig),
            )
            .unwrap(),
    };
    g.bench_function("ring verify (signature only)", |b| b.iter(ring_verify));
    g.bench_function("jsonwebtoken decode (aws-lc-rs)", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<JwtClaims>(black_box(&token), &jwt_key, &validation).unwrap()
        })
    });
    // This machine is shared and noisy: the runs above may see different
    // load. Here each iteration times both, back to back (order
    // alternating), and the reported "time" is 1000 x the median of the
    // per-pair ratios (validation / verification) in nanoseconds:
    // 1.050 µs means a ratio of 1.050. The median shrugs off preemptions.
    g.bench_function("ratio x1000: validate / ring verify (paired median)", |b| {
        b.iter_custom(|iters| {
            let mut ratios = Vec::with_capacity(iters as usize);
            for i in 0..iters {
                let time_ours = || {
                    let t = Instant::now();
                    black_box(
                        validator
                            .validate_access_token(black_box(&token), NOW)
                            .unwrap(),
                    );
                    t.elapsed()
                };
                let time_raw = || {
                    let t = Instant::now();
                    ring_verify();
                    t.elapsed()
                };
                let (ours, raw) = if i % 2 == 0 {
                    let o = time_ours();
                    (o, time_raw())
                } else {
                    let r = time_raw();
                    (time_ours(), r)
                };
                ratios.push(ours.as_secs_f64() / raw.as_secs_f64().max(1e-12));
            }
            ratios.sort_by(f64::total_cmp);
            let median = ratios.get(ratios.len() / 2).copied().unwrap_or(0.0);
            Duration::from_secs_f64(median * 1e-6 * iters as f64)
        })
    });
    // Same pairing, reporting the median of the per-pair differences: the
    // absolute cost of everything but the signature check.
    g.bench_function(
        "overhead: validate minus ring verify (paired median)",
        |b| {
            b.iter_custom(|iters| {
                let mut diffs = Vec::with_capacity(iters as usize);
                for i in 0..iters {
                    let time_ours = || {
                        let t = Instant::now();
                        black_box(
                            validator
                                .validate_access_token(black_box(&token), NOW)
                                .unwrap(),
                        );
                        t.elapsed()
                    };
                    let time_raw = || {
                        let t = Instant::now();
                        ring_verify();
                        t.elapsed()
                    };
                    let (ours, raw) = if i % 2 == 0 {
                        let o = time_ours();
                        (o, time_raw())
                    } else {
                        let r = time_raw();
                        (time_ours(), r)
                    };
                    diffs.push(ours.as_nanos() as i128 - raw.as_nanos() as i128);
                }
                diffs.sort_unstable();
                let median = diffs.get(diffs.len() / 2).copied().unwrap_or(0).max(0);
                Duration::from_nanos(median as u64) * iters as u32
            })
        },
    );
    g.finish();

    if alg == Algorithm::Es256 {
        let cached = Validator::new(config.cache_capacity(1024), KeyStore::new(set)).unwrap();
        cached.validate_access_token(&token, NOW).unwrap();
        let mut g = c.benchmark_group("token_cache");
        g.throughput(Throughput::Bytes(token.len() as u64));
        g.bench_function("mcptt-token cache hit", |b| {
            b.iter(|| {
                cached
                    .validate_access_token(black_box(&token), NOW)
                    .unwrap()
            })
        });
        g.finish();
        eprintln!("token length: {} bytes (ES256)", token.len());
    }
}

fn token(c: &mut Criterion) {
    bench_alg(c, Algorithm::Es256, "p256_rfc7515_a3.pk8.der");
    bench_alg(c, Algorithm::Rs256, "rsa2048_rfc7515_a2.pk8.der");
}

criterion_group!(benches, token);
criterion_main!(benches);

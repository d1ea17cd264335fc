//! Key rotation, atomic replacement, the refresh policy and the token cache.

use std::sync::Arc;

use mcptt_token::{Algorithm, Error, JwkSet, KeyStore, Signer, SigningKey, Validator};
use ring::rand::SystemRandom;

use crate::common::{NOW, claims, config};

/// Generates a key and remembers its PKCS#8 so [`gen_copy`] can rebuild it.
fn new_key(alg: Algorithm, kid: &str) -> SigningKey {
    let der = SigningKey::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
    KEYS.with(|m| m.borrow_mut().push((kid.to_owned(), alg, der.clone())));
    SigningKey::from_pkcs8(alg, kid, &der).unwrap()
}

fn set(keys: &[&SigningKey]) -> JwkSet {
    JwkSet::from_keys(keys.iter().map(|k| k.public_jwk())).unwrap()
}

#[test]
fn rotation_keeps_several_keys_live_and_replacement_is_atomic() {
    let old = new_key(Algorithm::Es256, "2026-10");
    let new = new_key(Algorithm::EdDsa, "2026-11");
    let store = Arc::new(KeyStore::new(set(&[&old, &new])));
    let v = Validator::new(config(), Arc::clone(&store)).unwrap();
    let t_old = Signer::new(gen_copy(&old)).sign_access_token(&claims());
    let t_old = t_old.unwrap();
    let t_new = Signer::new(gen_copy(&new))
        .sign_access_token(&claims())
        .unwrap();
    assert!(v.validate_access_token(&t_old, NOW).is_ok());
    assert!(v.validate_access_token(&t_new, NOW).is_ok());
    assert_eq!(store.generation(), 0);

    // The old key retires: its tokens stop validating at once.
    let snapshot_before = store.current();
    store.replace(set(&[&new]));
    assert_eq!(store.generation(), 1);
    assert_eq!(snapshot_before.len(), 2, "earlier snapshots are untouched");
    let e = v.validate_access_token(&t_old, NOW).unwrap_err();
    assert_eq!(e.kind(), "unknown_kid");
    assert!(v.validate_access_token(&t_new, NOW).is_ok());
}

/// `SigningKey` is not `Clone` (private key): rebuild the same key from the
/// PKCS#8 that [`new_key`] kept.
fn gen_copy(k: &SigningKey) -> SigningKey {
    KEYS.with(|m| {
        m.borrow()
            .iter()
            .find(|(kid, _, _)| kid == k.kid())
            .map(|(_, a, d)| SigningKey::from_pkcs8(*a, k.kid(), d).unwrap())
    })
    .unwrap_or_else(|| panic!("key {} not generated through new_key()", k.kid()))
}

thread_local! {
    static KEYS: std::cell::RefCell<Vec<(String, Algorithm, Vec<u8>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[test]
// Test only: the crate spawns nothing; this proves a caller can share it across threads.
#[allow(clippy::disallowed_methods)]
fn replacement_is_visible_to_validators_on_other_threads() {
    let k = new_key(Algorithm::Es256, "a");
    let store = Arc::new(KeyStore::new(JwkSet::new()));
    let v = Arc::new(Validator::new(config(), Arc::clone(&store)).unwrap());
    let token = Signer::new(gen_copy(&k))
        .sign_access_token(&claims())
        .unwrap();
    assert_eq!(
        v.validate_access_token(&token, NOW).unwrap_err().kind(),
        "unknown_kid"
    );
    store.replace(set(&[&k]));
    let v2 = Arc::clone(&v);
    let token2 = token;
    let ok = std::thread::spawn(move || v2.validate_access_token(&token2, NOW).is_ok())
        .join()
        .unwrap();
    assert!(ok);
}

#[test]
fn unknown_kid_refresh_policy() {
    let k = new_key(Algorithm::Es256, "k1");
    let store = Arc::new(KeyStore::with_refresh_interval(JwkSet::new(), 300));
    let v = Validator::new(config(), Arc::clone(&store)).unwrap();
    let token = Signer::new(gen_copy(&k))
        .sign_access_token(&claims())
        .unwrap();

    // First miss asks for a refresh; the caller sees it once.
    match v.validate_access_token(&token, NOW).unwrap_err() {
        Error::UnknownKey {
            kid,
            refresh_requested,
        } => assert_eq!((kid.as_str(), refresh_requested), ("k1", true)),
        e => panic!("{e}"),
    }
    assert!(store.poll_refresh());
    assert!(!store.poll_refresh());
    // While fetching, and within the interval, misses ask for nothing.
    assert!(matches!(
        v.validate_access_token(&token, NOW + 1),
        Err(Error::UnknownKey {
            refresh_requested: false,
            ..
        })
    ));
    // The fetch fails: the last good set (empty here) stays, the error is kept.
    store.handle_refresh_result(
        NOW + 2,
        Err(Error::InvalidKey {
            kid: None,
            reason: "HTTP 503".into(),
        }),
    );
    assert_eq!(store.refresh_failures(), 1);
    assert!(store.last_refresh_error().is_some());
    assert_eq!(store.generation(), 0);
    assert!(matches!(
        v.validate_access_token(&token, NOW + 100),
        Err(Error::UnknownKey {
            refresh_requested: false,
            ..
        })
    ));
    assert!(!store.poll_refresh());
    // After the interval, a miss asks again; this time the fetch brings the key.
    assert!(matches!(
        v.validate_access_token(&token, NOW + 302),
        Err(Error::UnknownKey {
            refresh_requested: true,
            ..
        })
    ));
    assert!(store.poll_refresh());
    store
        .handle_refresh_json(NOW + 303, &set(&[&k]).to_json())
        .unwrap();
    assert_eq!(store.generation(), 1);
    assert!(store.last_refresh_error().is_none());
    assert!(v.validate_access_token(&token, NOW + 304).is_ok());
    // A later bad document keeps the good set.
    assert!(store.request_refresh(NOW + 700));
    assert!(store.poll_refresh());
    let e = store
        .handle_refresh_json(NOW + 701, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}")
        .unwrap_err();
    assert_eq!(e.kind(), "invalid_key");
    assert_eq!(store.generation(), 1);
    assert!(v.validate_access_token(&token, NOW + 702).is_ok());
}

#[test]
fn kid_less_tokens_use_the_single_key_of_their_algorithm() {
    let a = new_key(Algorithm::Es256, "a");
    let b = new_key(Algorithm::Es256, "b");
    let c = claims();
    let claims_json = serde_json::to_string(&c).unwrap();
    let token = crate::common::forge(
        &gen_copy(&a),
        r#"{"alg":"ES256","typ":"at+jwt"}"#,
        &claims_json,
    );
    let one = Validator::new(config(), KeyStore::new(set(&[&a]))).unwrap();
    let at = crate::common::validate_both(&one, &token, NOW).unwrap();
    assert_eq!(at.key_id, None);
    // Two ES256 keys: ambiguous, refused.
    let two = Validator::new(config(), KeyStore::new(set(&[&a, &b]))).unwrap();
    assert_eq!(
        two.validate_access_token(&token, NOW).unwrap_err().kind(),
        "unknown_kid"
    );
}

#[test]
fn cache_hits_never_outlive_exp_or_the_key_set() {
    let k = new_key(Algorithm::Es256, "k");
    let store = Arc::new(KeyStore::new(set(&[&k])));
    let v = Validator::new(config().cache_capacity(2), Arc::clone(&store)).unwrap();
    let signer = Signer::new(gen_copy(&k));
    let token = signer.sign_access_token(&claims()).unwrap();
    let first = v.validate_access_token(&token, NOW).unwrap();
    assert_eq!((v.cached_tokens(), v.cache_hits()), (1, 0));
    assert_eq!(v.validate_access_token(&token, NOW + 1).unwrap(), first);
    assert_eq!(v.cache_hits(), 1);
    // At exp the entry is dead even though the leeway would still accept the token.
    let exp = first.expires_at;
    assert!(v.validate_access_token(&token, exp).is_ok());
    assert_eq!(
        v.cache_hits(),
        1,
        "validated again, not served from the cache"
    );
    assert_eq!(
        v.validate_access_token(&token, exp + 60)
            .unwrap_err()
            .kind(),
        "expired"
    );
    // Bounded.
    for i in 0..5 {
        let t = signer
            .sign_access_token(&mcptt_token::AccessTokenClaims {
                jti: format!("j{i}"),
                ..claims()
            })
            .unwrap();
        v.validate_access_token(&t, NOW).unwrap();
        assert!(v.cached_tokens() <= 2);
    }
    // A key-set change invalidates cached tokens: the retired key's token fails.
    let t = signer.sign_access_token(&claims()).unwrap();
    v.validate_access_token(&t, NOW).unwrap();
    v.validate_access_token(&t, NOW).unwrap();
    let hits = v.cache_hits();
    store.replace(JwkSet::new());
    assert_eq!(
        v.validate_access_token(&t, NOW).unwrap_err().kind(),
        "unknown_kid"
    );
    assert_eq!(v.cache_hits(), hits);
    v.clear_cache();
    assert_eq!(v.cached_tokens(), 0);
    // No cache configured: nothing stored.
    let plain = Validator::new(config(), KeyStore::new(set(&[&k]))).unwrap();
    plain.validate_access_token(&t, NOW).unwrap();
    assert_eq!(plain.cached_tokens(), 0);
}

#[test]
fn the_borrowed_path_fills_and_reads_the_same_cache() {
    let k = new_key(Algorithm::Es256, "k");
    let v = Validator::new(config().cache_capacity(2), KeyStore::new(set(&[&k]))).unwrap();
    let token = Signer::new(gen_copy(&k))
        .sign_access_token(&claims())
        .unwrap();
    // A miss through the borrowed path stores the token...
    let first = v
        .validate_access_token_with(&token, NOW, |r| r.to_access_token())
        .unwrap();
    assert_eq!((v.cached_tokens(), v.cache_hits()), (1, 0));
    // ...which both paths then answer from the cache, with the same claims.
    assert_eq!(v.validate_access_token(&token, NOW + 1).unwrap(), first);
    let again = v
        .validate_access_token_with(&token, NOW + 1, |r| {
            (
                r.to_access_token(),
                r.scopes().count(),
                r.has_scope("openid"),
            )
        })
        .unwrap();
    assert_eq!(again, (first.clone(), 2, true));
    assert_eq!(v.cache_hits(), 2);
    // At exp the cache does not answer and validation fails past the leeway.
    assert_eq!(
        v.validate_access_token_with(&token, first.expires_at + 60, |_| ())
            .unwrap_err()
            .kind(),
        "expired"
    );
    assert_eq!(v.cache_hits(), 2);
}

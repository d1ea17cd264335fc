//! Demo material for a local run: users with every login method, the MCPTT client
//! registration, TLS certificate and signing keys.
//!
//! Every demo user `NAME` (alice, bob, carol, dave, erin) has
//! - MCPTT ID `sip:NAME@example.com` and login name `NAME`;
//! - password `NAME-password`;
//! - TOTP secret [`DEMO_TOTP_SECRET`] (SHA-1, 6 digits, 30 s);
//! - SIM credentials: K = first 16 bytes of SHA-256(`mcptt-demo-sim:NAME`), OPc of
//!   TS 35.208 test set 1, AMF 8000, SQN 0 (see [`demo_usim`]).
//!
//! These are public: never use them outside a demo.

use mcptt_idm::directory::{Directory, McpttId, SimCredentials, User};
use mcptt_idm::milenage::{Milenage, Usim};
use mcptt_idm::oauth::Client;
use mcptt_idm::otp::{OtpAlgorithm, Totp, encode_base32};
use mcptt_idm::password::PasswordHash;
use mcptt_idm::{Error, RandomSource};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// MCPTT domain of the demo users.
pub const DEMO_DOMAIN: &str = "example.com";
/// Names of the demo users.
pub const DEMO_USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin"];
/// OAuth client id of the demo MCPTT client.
pub const DEMO_CLIENT_ID: &str = "mcptt-client";
/// Redirect URI registered for the demo client (a loopback URI, RFC 8252 §7.3; the UE client
/// reads the code from the redirect without following it).
pub const DEMO_REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// The demo TOTP secret (raw bytes; base32 in [`demo_totp_base32`]).
pub const DEMO_TOTP_SECRET: &[u8] = b"mcptt-demo-totp-secret";
/// OPc of TS 35.208 test set 1, used for every demo SIM.
pub const DEMO_OPC: [u8; 16] = [
    0xcd, 0x63, 0xcb, 0x71, 0x95, 0x4a, 0x9f, 0x4e, 0x48, 0xa5, 0x99, 0x4e, 0x37, 0xa0, 0x2b, 0xaf,
];

/// The demo TOTP secret in base32 (what an authenticator app takes).
pub fn demo_totp_base32() -> String {
    encode_base32(DEMO_TOTP_SECRET)
}

/// The demo TOTP generator (the same for every demo user).
pub fn demo_totp() -> Totp {
    // Invariant: the secret is non-empty and 6 digits are in range.
    Totp::try_new(DEMO_TOTP_SECRET.to_vec(), OtpAlgorithm::Sha1, 6)
        .unwrap_or_else(|_| unreachable!())
}

/// K of a demo user's SIM.
pub fn demo_sim_key(name: &str) -> [u8; 16] {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("mcptt-demo-sim:{name}").as_bytes(),
    );
    let mut k = [0u8; 16];
    k.copy_from_slice(&d.as_ref()[..16]);
    k
}

/// The USIM of a demo user, as the UE holds it (highest accepted SQN 0).
pub fn demo_usim(name: &str) -> Usim {
    Usim::new(Milenage::new(demo_sim_key(name), DEMO_OPC), 0)
}

/// The MCPTT ID of a demo user.
pub fn demo_mcptt_id(name: &str) -> String {
    format!("sip:{name}@{DEMO_DOMAIN}")
}

/// The demo directory: the users above and the client [`DEMO_CLIENT_ID`] with
/// [`DEMO_REDIRECT_URI`] plus `extra_redirects`. `iterations` is the PBKDF2 count.
///
/// # Errors
/// [`Error`] from hashing (random generator failure).
pub fn demo_directory(
    iterations: u32,
    extra_redirects: &[String],
    rng: &dyn RandomSource,
) -> Result<Directory, Error> {
    let mut dir = Directory::new();
    let mut redirect_uris = vec![DEMO_REDIRECT_URI.to_owned()];
    redirect_uris.extend(extra_redirects.iter().cloned());
    dir.insert_client(Client {
        client_id: DEMO_CLIENT_ID.into(),
        redirect_uris,
    });
    for name in DEMO_USERS {
        let mut u = User::new(McpttId::parse(&demo_mcptt_id(name))?);
        u.login = Some((*name).to_owned());
        u.display_name = Some(name[..1].to_uppercase() + &name[1..]);
        u.password = Some(PasswordHash::generate(
            &format!("{name}-password"),
            iterations,
            rng,
        )?);
        u.totp = Some(demo_totp());
        u.sim = Some(SimCredentials {
            milenage: Milenage::new(demo_sim_key(name), DEMO_OPC),
            amf: [0x80, 0x00],
            sqn: 0,
        });
        dir.insert(u);
    }
    Ok(dir)
}

/// A self-signed TLS certificate for `localhost`, `127.0.0.1` and `::1`, with its key.
///
/// # Errors
/// [`rcgen::Error`].
pub fn self_signed_cert()
-> Result<(CertificateDer<'static>, PrivateKeyDer<'static>, String), rcgen::Error> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ck = rcgen::generate_simple_self_signed(names)?;
    let pem = ck.cert.pem();
    let der = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    Ok((der, key, pem))
}

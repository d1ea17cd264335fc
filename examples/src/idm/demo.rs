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

use mcptt_idm::directory::Directory;
use mcptt_idm::milenage::{Milenage, Usim};
use mcptt_idm::otp::{OtpAlgorithm, Totp, encode_base32};
use mcptt_idm::password::PasswordHash;
use mcptt_idm::{Error, RandomSource, hex};
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

/// The demo directory as a users file (the TOML format of `mcptt_idm::directory`): the users
/// above and the client [`DEMO_CLIENT_ID`] with [`DEMO_REDIRECT_URI`] plus `extra_redirects`.
/// `iterations` is the PBKDF2 count.
///
/// # Errors
/// [`Error`] from hashing (random generator failure).
pub fn demo_users_toml(
    iterations: u32,
    extra_redirects: &[String],
    rng: &dyn RandomSource,
) -> Result<String, Error> {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut redirect_uris = vec![quote(DEMO_REDIRECT_URI)];
    redirect_uris.extend(extra_redirects.iter().map(|r| quote(r)));
    let mut t = format!(
        "# MCPTT IdMS demo users (public demo credentials: never use them elsewhere).\n\n\
         [[client]]\nclient_id = {}\nredirect_uris = [{}]\n",
        quote(DEMO_CLIENT_ID),
        redirect_uris.join(", ")
    );
    for name in DEMO_USERS {
        let hash = PasswordHash::generate(&format!("{name}-password"), iterations, rng)?;
        t.push_str(&format!(
            "\n[[user]]\nmcptt_id = {}\nlogin = {}\ndisplay_name = {}\npassword = {}\n\n\
             [user.totp]\nsecret = {}\nalgorithm = \"SHA1\"\ndigits = 6\nstep = 30\nwindow = 1\n\n\
             [user.sim]\nk = {}\nopc = {}\namf = \"8000\"\nsqn = 0\n",
            quote(&demo_mcptt_id(name)),
            quote(name),
            quote(&(name[..1].to_uppercase() + &name[1..])),
            quote(&hash.encode()),
            quote(&demo_totp_base32()),
            quote(&hex::encode(&demo_sim_key(name))),
            quote(&hex::encode(&DEMO_OPC)),
        ));
    }
    Ok(t)
}

/// The demo directory, loaded from [`demo_users_toml`] (so the demo goes through the file format).
///
/// # Errors
/// [`Error`] from hashing or, were the generated file wrong, from loading it.
pub fn demo_directory(
    iterations: u32,
    extra_redirects: &[String],
    rng: &dyn RandomSource,
) -> Result<Directory, Error> {
    Ok(Directory::from_toml(&demo_users_toml(
        iterations,
        extra_redirects,
        rng,
    )?)?)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mcptt_idm::SystemRandom;

    #[test]
    fn demo_file_loads_with_every_method() {
        let extra = vec!["http://127.0.0.1:5555/cb".to_owned()];
        let dir = demo_directory(10, &extra, &SystemRandom::new()).unwrap();
        assert_eq!(
            dir.client(DEMO_CLIENT_ID).unwrap().redirect_uris,
            [DEMO_REDIRECT_URI, "http://127.0.0.1:5555/cb"]
        );
        for name in DEMO_USERS {
            let u = dir.user(name).unwrap();
            assert_eq!(u.mcptt_id.as_str(), demo_mcptt_id(name));
            assert!(
                u.password
                    .as_ref()
                    .unwrap()
                    .verify(&format!("{name}-password"))
            );
            assert_eq!(
                u.totp.as_ref().unwrap().code_at(59).unwrap(),
                demo_totp().code_at(59).unwrap()
            );
            let sim = u.sim.as_ref().unwrap();
            let mut usim = demo_usim(name);
            let v = mcptt_idm::milenage::AuthVector::generate(&sim.milenage, [7; 16], 32, sim.amf);
            assert_eq!(usim.respond(&v.rand, &v.autn), Ok(v.xres), "{name}");
        }
    }
}

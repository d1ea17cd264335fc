//! IdMS request handling with arbitrary form bodies: form decoding, authorization requests,
//! login submissions, token requests and the user-directory loader must never panic.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use mcptt_idm::oauth::{Client, parse_form};
use mcptt_idm::password::PasswordHash;
use mcptt_idm::{Directory, Idms, IdmsConfig, KeyRing, McpttId, SystemRandom, User};

fn idms() -> &'static Mutex<Idms> {
    static IDMS: OnceLock<Mutex<Idms>> = OnceLock::new();
    IDMS.get_or_init(|| {
        let mut dir = Directory::new();
        dir.insert_client(Client {
            client_id: "c".into(),
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
        });
        let mut u = User::new(McpttId::parse("sip:a@x").expect("valid MCPTT ID"));
        u.login = Some("a".into());
        u.password = Some(PasswordHash::derive("p", b"saltsalt", 1).expect("valid parameters"));
        dir.insert(u);
        let key = mcptt_token::SigningKey::generate(
            mcptt_token::Algorithm::Es256,
            "k",
            &ring::rand::SystemRandom::new(),
        )
        .expect("key generation");
        Mutex::new(
            Idms::new(IdmsConfig::new("https://idms.fuzz"), dir, KeyRing::new(key)).expect("IdMS"),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Directory::from_toml(text);
    let Ok(params) = parse_form(text, 64) else {
        return;
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let rng = SystemRandom::new();
    let mut idms = idms()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = idms.authorize(&params);
    let _ = idms.login(&params, IpAddr::V4(Ipv4Addr::LOCALHOST), now, &rng);
    let _ = idms.token(&params, now, &rng);
});

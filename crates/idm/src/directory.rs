//! The user directory: MCPTT users keyed by MCPTT ID, with their credentials and allowed clients.
//!
//! The MCPTT ID (TS 22.179 §4.5.3, TS 23.379 §8.1.2) is a SIP URI in the MCPTT application
//! domain, independent of the IMSI and of the public user identity of any UE.
//!
//! # File format (TOML)
//!
//! ```toml
//! # OAuth clients allowed to ask for tokens (RFC 6749 §2): public clients using PKCE.
//! [[client]]
//! client_id = "mcptt-ue"
//! redirect_uris = ["http://127.0.0.1:7777/callback"]
//!
//! [[user]]
//! mcptt_id = "sip:alice@mcptt.example"      # required, unique
//! login = "alice"                           # optional short login name, unique
//! display_name = "Alice"                     # optional
//! clients = ["mcptt-ue"]                     # optional; absent = every registered client
//! password = "$pbkdf2-sha256$i=600000$SALT$HASH"   # optional, see PasswordHash
//!
//! [user.totp]                                # optional: second factor (RFC 6238)
//! secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"   # base32 (RFC 4648)
//! algorithm = "SHA1"                         # SHA1 | SHA256 | SHA512, default SHA1
//! digits = 6                                 # 6..=9, default 6
//! step = 30                                  # seconds, default 30
//! window = 1                                 # steps each way, default 1
//!
//! [user.sim]                                 # optional: SIM-based login (MILENAGE)
//! k = "465b5ce8b199b49faa5f0a2ee238a6bc"     # 16 bytes hex
//! opc = "cd63cb71954a9f4e48a5994e37a02baf"   # 16 bytes hex (or `op = ...`)
//! amf = "8000"                               # 2 bytes hex, default 8000
//! sqn = 0                                    # the IdMS's current SQN for this SIM, default 0
//! ```
//!
//! Unknown keys are refused, so a typo does not silently drop a credential; every error names
//! the line and column.

use crate::error::DirectoryError;
use crate::milenage::Milenage;
use crate::oauth::Client;
use crate::otp::{OtpAlgorithm, Totp, decode_base32};
use crate::password::PasswordHash;
use crate::{Error, hex};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use toml::Spanned;

/// Longest MCPTT ID accepted.
pub const MAX_MCPTT_ID_LEN: usize = 256;

/// A validated MCPTT ID: `sip:user@domain` with the scheme and domain in lower case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct McpttId(String);

impl McpttId {
    /// Validates and normalises an MCPTT ID. A missing `sip:` scheme is added, so a person may
    /// type `alice@mcptt.example` at the login form.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an empty user part or domain, whitespace or control characters,
    /// a scheme other than `sip:`, or more than [`MAX_MCPTT_ID_LEN`] bytes.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |reason| Error::Malformed {
            what: "MCPTT ID",
            reason,
        };
        let text = text.trim();
        if text.len() > MAX_MCPTT_ID_LEN {
            return Err(bad("too long"));
        }
        let rest = match text.get(..4) {
            Some(s) if s.eq_ignore_ascii_case("sip:") => text.get(4..).unwrap_or(""),
            _ if text.contains(':') && !text.contains('@') => {
                return Err(bad("only sip: URIs are MCPTT IDs"));
            }
            _ if text.split('@').next().is_some_and(|u| u.contains(':')) => {
                return Err(bad("only sip: URIs are MCPTT IDs"));
            }
            _ => text,
        };
        let (user, domain) = rest
            .rsplit_once('@')
            .ok_or_else(|| bad("expected sip:user@domain"))?;
        if user.is_empty() || domain.is_empty() {
            return Err(bad("expected sip:user@domain"));
        }
        if rest.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ';' | '?')
        }) {
            return Err(bad("invalid character"));
        }
        if !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        {
            return Err(bad("invalid domain"));
        }
        Ok(Self(format!("sip:{user}@{}", domain.to_ascii_lowercase())))
    }

    /// The URI text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI text, taken out.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// Lets maps keyed by MCPTT ID be searched with the URI text (same order and hash as the
/// text's).
impl std::borrow::Borrow<str> for McpttId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for McpttId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// SIM credentials for MILENAGE-based login.
#[derive(Clone, Debug)]
pub struct SimCredentials {
    /// The algorithm set (K and OPc).
    pub milenage: Milenage,
    /// The authentication management field sent in AUTN.
    pub amf: [u8; 2],
    /// The IdMS's sequence number SQN_HE for this SIM at load time.
    pub sqn: u64,
}

/// One MCPTT user.
#[derive(Clone, Debug)]
pub struct User {
    /// The MCPTT ID (the `mcptt_id` claim of the user's tokens).
    pub mcptt_id: McpttId,
    /// A short login name accepted instead of the MCPTT ID (unique in the directory).
    pub login: Option<String>,
    /// A name for people.
    pub display_name: Option<String>,
    /// Password hash, when the user may log in by password.
    pub password: Option<PasswordHash>,
    /// TOTP second factor.
    pub totp: Option<Totp>,
    /// SIM credentials.
    pub sim: Option<SimCredentials>,
    /// OAuth clients this user may sign in through; empty means every registered client.
    pub clients: Vec<String>,
}

impl User {
    /// A user with no credentials yet.
    #[must_use]
    pub fn new(mcptt_id: McpttId) -> Self {
        Self {
            mcptt_id,
            login: None,
            display_name: None,
            password: None,
            totp: None,
            sim: None,
            clients: Vec::new(),
        }
    }

    /// Whether the user may sign in through `client_id`.
    #[must_use]
    pub fn allows_client(&self, client_id: &str) -> bool {
        self.clients.is_empty() || self.clients.iter().any(|c| c == client_id)
    }
}

/// The users and OAuth clients the IdMS knows.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    /// The users by MCPTT ID: a login looks one up in O(1), without the string compares
    /// of an ordered map's search (five lookups per login).
    users: HashMap<McpttId, User>,
    /// The MCPTT IDs in order, for [`Directory::users`].
    order: BTreeSet<McpttId>,
    logins: HashMap<String, McpttId>,
    clients: Vec<Client>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    client: Vec<FileClient>,
    #[serde(default)]
    user: Vec<FileUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClient {
    client_id: Spanned<String>,
    redirect_uris: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    mcptt_id: Spanned<String>,
    login: Option<Spanned<String>>,
    display_name: Option<String>,
    #[serde(default)]
    clients: Vec<String>,
    password: Option<Spanned<String>>,
    totp: Option<FileTotp>,
    sim: Option<FileSim>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTotp {
    secret: Spanned<String>,
    #[serde(default)]
    algorithm: OtpAlgorithm,
    digits: Option<Spanned<u8>>,
    step: Option<u64>,
    window: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSim {
    k: Spanned<String>,
    opc: Option<Spanned<String>>,
    op: Option<Spanned<String>>,
    amf: Option<Spanned<String>>,
    #[serde(default)]
    sqn: u64,
}

impl Directory {
    /// An empty directory.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the TOML format described in the module documentation.
    ///
    /// # Errors
    /// [`DirectoryError`] with the line and column of the first problem.
    pub fn from_toml(text: &str) -> Result<Self, DirectoryError> {
        let doc: FileDoc = toml::from_str(text)
            .map_err(|e| DirectoryError::at(text, e.span(), e.message().to_owned()))?;
        let err =
            |span: std::ops::Range<usize>, msg: String| DirectoryError::at(text, Some(span), msg);
        let mut dir = Self::new();
        for c in doc.client {
            let id = c.client_id.get_ref();
            if id.is_empty() || id.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                return Err(err(
                    c.client_id.span(),
                    "client_id must be non-empty, without spaces".into(),
                ));
            }
            if dir.clients.iter().any(|x| &x.client_id == id) {
                return Err(err(
                    c.client_id.span(),
                    format!("client `{id}` listed twice"),
                ));
            }
            let mut uris = Vec::new();
            for u in c.redirect_uris {
                let s = u.get_ref();
                if !(s.starts_with("https://") || s.starts_with("http://")) || s.contains('#') {
                    return Err(err(u.span(), "redirect URI must be an absolute http(s) URI without fragment (RFC 6749 §3.1.2)".into()));
                }
                uris.push(s.clone());
            }
            if uris.is_empty() {
                return Err(err(
                    c.client_id.span(),
                    format!("client `{id}` has no redirect_uris"),
                ));
            }
            dir.clients.push(Client {
                client_id: id.clone(),
                redirect_uris: uris,
            });
        }
        for u in doc.user {
            let id = McpttId::parse(u.mcptt_id.get_ref())
                .map_err(|e| err(u.mcptt_id.span(), e.to_string()))?;
            if dir.users.contains_key(&id) {
                return Err(err(
                    u.mcptt_id.span(),
                    format!("MCPTT ID `{id}` listed twice"),
                ));
            }
            let mut user = User::new(id);
            if let Some(l) = u.login {
                let name = l.get_ref();
                if name.is_empty()
                    || name.contains('@')
                    || name.contains(':')
                    || name.chars().any(char::is_whitespace)
                {
                    return Err(err(
                        l.span(),
                        "login must be a short name without `@`, `:` or spaces".into(),
                    ));
                }
                if dir.logins.contains_key(name) {
                    return Err(err(l.span(), format!("login `{name}` listed twice")));
                }
                user.login = Some(name.clone());
            }
            user.display_name = u.display_name;
            user.clients = u.clients;
            if let Some(p) = u.password {
                user.password = Some(
                    PasswordHash::parse(p.get_ref()).map_err(|e| err(p.span(), e.to_string()))?,
                );
            }
            if let Some(t) = u.totp {
                let key = decode_base32(t.secret.get_ref())
                    .map_err(|e| err(t.secret.span(), e.to_string()))?;
                let digits = t.digits.as_ref().map_or(6, |d| *d.get_ref());
                let span = t
                    .digits
                    .as_ref()
                    .map_or_else(|| t.secret.span(), Spanned::span);
                let mut totp = Totp::try_new(key, t.algorithm, digits)
                    .map_err(|e| err(span, e.to_string()))?;
                if let Some(step) = t.step {
                    totp = totp.with_step(step);
                }
                if let Some(window) = t.window {
                    totp = totp.with_window(window.min(10));
                }
                user.totp = Some(totp);
            }
            if let Some(s) = u.sim {
                let k = hex::decode_array::<16>(s.k.get_ref())
                    .map_err(|e| err(s.k.span(), format!("k: {e}")))?;
                let milenage = match (s.opc, s.op) {
                    (Some(opc), None) => Milenage::new(
                        k,
                        hex::decode_array(opc.get_ref())
                            .map_err(|e| err(opc.span(), format!("opc: {e}")))?,
                    ),
                    (None, Some(op)) => Milenage::with_op(
                        k,
                        hex::decode_array(op.get_ref())
                            .map_err(|e| err(op.span(), format!("op: {e}")))?,
                    ),
                    _ => {
                        return Err(err(
                            s.k.span(),
                            "sim needs exactly one of `opc` or `op`".into(),
                        ));
                    }
                };
                let amf = match s.amf {
                    Some(a) => hex::decode_array(a.get_ref())
                        .map_err(|e| err(a.span(), format!("amf: {e}")))?,
                    None => [0x80, 0x00],
                };
                if s.sqn > crate::milenage::MAX_SQN {
                    return Err(err(s.k.span(), "sqn must fit in 48 bits".into()));
                }
                user.sim = Some(SimCredentials {
                    milenage,
                    amf,
                    sqn: s.sqn,
                });
            }
            if user.password.is_none() && user.sim.is_none() {
                return Err(err(
                    u.mcptt_id.span(),
                    format!(
                        "user `{}` has neither a password nor SIM credentials",
                        user.mcptt_id
                    ),
                ));
            }
            if user.totp.is_some() && user.password.is_none() {
                return Err(err(
                    u.mcptt_id.span(),
                    format!("user `{}` has a TOTP secret but no password", user.mcptt_id),
                ));
            }
            dir.insert(user);
        }
        Ok(dir)
    }

    /// Adds or replaces a user.
    pub fn insert(&mut self, user: User) {
        if let Some(old) = self.users.get(&user.mcptt_id).and_then(|u| u.login.clone()) {
            self.logins.remove(&old);
        }
        if let Some(login) = &user.login {
            self.logins.insert(login.clone(), user.mcptt_id.clone());
        }
        self.order.insert(user.mcptt_id.clone());
        self.users.insert(user.mcptt_id.clone(), user);
    }

    /// Adds or replaces an OAuth client.
    pub fn insert_client(&mut self, client: Client) {
        self.clients.retain(|c| c.client_id != client.client_id);
        self.clients.push(client);
    }

    /// Finds a user by MCPTT ID (as typed at a login form: the `sip:` scheme may be left out)
    /// or by login name.
    #[must_use]
    pub fn user(&self, login: &str) -> Option<&User> {
        let login = login.trim();
        match self.logins.get(login) {
            Some(id) => self.users.get(id),
            // An MCPTT ID already in normal form (as clients send it) is its own key: parsing
            // it would give the same text back, so it is looked up without the parse.
            None => self.users.get(login).or_else(|| {
                McpttId::parse(login)
                    .ok()
                    .and_then(|id| self.users.get(&id))
            }),
        }
    }

    /// All users, ordered by MCPTT ID.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        // Every ID in `order` has its user (`insert` adds both, nothing removes either).
        self.order.iter().filter_map(|id| self.users.get(id))
    }

    /// The registered OAuth clients.
    #[must_use]
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// Finds a registered client.
    #[must_use]
    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HASH: &str = "$pbkdf2-sha256$i=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn mcptt_id_rules() {
        assert_eq!(
            McpttId::parse("sip:alice@MCPTT.Example").unwrap().as_str(),
            "sip:alice@mcptt.example"
        );
        assert_eq!(
            McpttId::parse("SIP:alice@x").unwrap().as_str(),
            "sip:alice@x"
        );
        assert_eq!(McpttId::parse("alice@x").unwrap().as_str(), "sip:alice@x");
        assert_ne!(
            McpttId::parse("Alice@x").unwrap(),
            McpttId::parse("alice@x").unwrap(),
            "user part is case-sensitive"
        );
        for bad in [
            "",
            "sip:",
            "sip:@x",
            "sip:a@",
            "tel:+123",
            "mailto:a@x",
            "sip:a b@x",
            "sip:a@x;y",
            "sip:a@x_y",
            "sip:a\n@x",
        ] {
            assert!(McpttId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(McpttId::parse(&format!("sip:{}@x", "a".repeat(300))).is_err());
    }

    #[test]
    fn loads_the_documented_format() {
        let text = format!(
            r#"
[[client]]
client_id = "mcptt-ue"
redirect_uris = ["http://127.0.0.1:7777/callback"]

[[user]]
mcptt_id = "sip:alice@mcptt.example"
login = "alice"
display_name = "Alice"
clients = ["mcptt-ue"]
password = "{HASH}"

[user.totp]
secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
algorithm = "SHA256"
digits = 8
step = 60
window = 2

[[user]]
mcptt_id = "sip:carol@mcptt.example"
[user.sim]
k = "465b5ce8b199b49faa5f0a2ee238a6bc"
op = "cdc202d5123e20f62b6d676ac72cb318"
amf = "b9b9"
sqn = 7
"#
        );
        let dir = Directory::from_toml(&text).unwrap();
        assert_eq!(dir.clients().len(), 1);
        assert_eq!(
            dir.client("mcptt-ue").unwrap().redirect_uris,
            ["http://127.0.0.1:7777/callback"]
        );
        let alice = dir.user("alice@mcptt.example").unwrap();
        assert_eq!(alice.display_name.as_deref(), Some("Alice"));
        assert_eq!(
            dir.user("alice").unwrap().mcptt_id,
            alice.mcptt_id,
            "login name"
        );
        assert!(dir.user("carol").is_none(), "carol has no login name");
        assert!(alice.allows_client("mcptt-ue") && !alice.allows_client("other"));
        let totp = alice.totp.as_ref().unwrap();
        assert_eq!(
            (totp.algorithm, totp.digits, totp.step, totp.window),
            (OtpAlgorithm::Sha256, 8, 60, 2)
        );
        let carol = dir.user("sip:carol@mcptt.example").unwrap();
        // Other spellings of the same ID go through the parse and find the same user.
        for other in ["SIP:carol@MCPTT.Example", " carol@mcptt.example\t"] {
            assert_eq!(dir.user(other).unwrap().mcptt_id, carol.mcptt_id, "{other}");
        }
        let sim = carol.sim.as_ref().unwrap();
        assert_eq!(
            sim.milenage.opc(),
            hex::decode_array::<16>("cd63cb71954a9f4e48a5994e37a02baf").unwrap()
        );
        assert_eq!((sim.amf, sim.sqn), ([0xb9, 0xb9], 7));
        assert!(carol.allows_client("anything"));
        assert!(dir.user("sip:nobody@mcptt.example").is_none());
        assert_eq!(dir.users().count(), 2);
    }

    /// The hashed index finds what an ordered map of the same inserts finds (IDs, login
    /// names, other spellings, replaced users' old login names), and `users()` lists the
    /// users in MCPTT ID order, each once.
    #[test]
    fn index_matches_ordered_maps() {
        use std::collections::BTreeMap;
        let mut dir = Directory::new();
        let mut by_id = BTreeMap::new();
        let mut logins = BTreeMap::new();
        // Inserted out of order; user 7 comes twice, the second time with another login.
        for (n, login) in [(5, "e"), (1, "a"), (9, "i"), (7, "g"), (3, "c"), (7, "g2")] {
            let mut u = User::new(McpttId::parse(&format!("sip:u{n}@x.example")).unwrap());
            u.login = Some(login.to_owned());
            if let Some(old) = by_id.get(&u.mcptt_id).and_then(|o: &User| o.login.clone()) {
                logins.remove(&old);
            }
            logins.insert(login.to_owned(), u.mcptt_id.clone());
            by_id.insert(u.mcptt_id.clone(), u.clone());
            dir.insert(u);
        }
        let ids: Vec<_> = dir.users().map(|u| u.mcptt_id.clone()).collect();
        assert_eq!(ids, by_id.keys().cloned().collect::<Vec<_>>());
        for ask in [
            "sip:u7@x.example",
            "u7@X.EXAMPLE",
            " sip:u1@x.example ",
            "g",
            "g2",
            "a",
            "e ",
            "sip:u2@x.example",
            "u2",
            "",
            "sip:",
            "i@x.example",
        ] {
            let t = ask.trim();
            let expected = match logins.get(t) {
                Some(id) => by_id.get(id),
                None => McpttId::parse(t).ok().and_then(|id| by_id.get(&id)),
            };
            let found = dir.user(ask).map(|u| (&u.mcptt_id, &u.login));
            assert_eq!(found, expected.map(|u| (&u.mcptt_id, &u.login)), "{ask:?}");
        }
        assert!(dir.user("g").is_none(), "user 7's old login name is gone");
    }

    fn error_of(text: &str) -> DirectoryError {
        Directory::from_toml(text).unwrap_err()
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = error_of("[[user]]\nmcptt_id = \"sip:a@x\"\npasword = \"x\"\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("pasword"), "{e}");

        let e = error_of("[[user]]\nmcptt_id = \"tel:+1\"\npassword = \"x\"\n");
        assert_eq!((e.line, e.column), (2, 12), "{e}");
        assert!(e.to_string().contains("MCPTT ID"), "{e}");

        let e = error_of("[[user]]\nmcptt_id = \"sip:a@x\"\npassword = \"plain\"\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("password hash"), "{e}");

        let e = error_of(&format!(
            "[[user]]\nmcptt_id = \"sip:a@x\"\npassword = \"{HASH}\"\n[[user]]\nmcptt_id = \"sip:a@X\"\npassword = \"{HASH}\"\n"
        ));
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("twice"), "{e}");

        let e =
            error_of("[[user]]\nmcptt_id = \"sip:a@x\"\n[user.sim]\nk = \"00\"\nopc = \"00\"\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("k:"), "{e}");

        let e = error_of("[[user]]\nmcptt_id = \"sip:a@x\"\n");
        assert!(e.message.contains("neither"), "{e}");

        let e = error_of("[[client]]\nclient_id = \"c\"\nredirect_uris = [\"ftp://x\"]\n");
        assert_eq!(e.line, 3, "{e}");

        let e = error_of(&format!(
            "[[user]]\nmcptt_id = \"sip:a@x\"\nlogin = \"a@x\"\npassword = \"{HASH}\"\n"
        ));
        assert_eq!(e.line, 3, "{e}");
        let e = error_of(&format!(
            "[[user]]\nmcptt_id = \"sip:a@x\"\nlogin = \"a\"\npassword = \"{HASH}\"\n[[user]]\nmcptt_id = \"sip:b@x\"\nlogin = \"a\"\npassword = \"{HASH}\"\n"
        ));
        assert_eq!(e.line, 7, "{e}");

        let e = error_of("[[user]\n");
        assert_eq!(e.line, 1, "{e}");

        let e = error_of(&format!(
            "[[user]]\nmcptt_id = \"sip:a@x\"\npassword = \"{HASH}\"\n[user.totp]\nsecret = \"ABC1\"\n"
        ));
        assert_eq!(e.line, 5, "{e}");
    }
}

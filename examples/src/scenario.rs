//! The scenarios `flow --scenario` can run, and what each one must end with.

use std::fmt;

use crate::steps::{ALL, ON_REGISTERED_UE};

/// Steps of the `bad-token` scenario: the refused PUBLISH (403 at steps 9–10) and the refused
/// SUBSCRIBE (403 at steps 13–14); no NOTIFY goes to a user the server could not authorise.
pub const BAD_TOKEN_STEPS: [u8; 14] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

use mcptt_service_state::UeKind;

/// A scenario of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Scenario {
    /// One user on one personal UE: steps 1–18, final state `full-access`.
    #[default]
    Basic,
    /// One user on three UEs: each UE runs steps 1–18 and ends `full-access`.
    MultiDevice,
    /// A second user takes over a shareable UE: the first user's NOTIFY shows `replaced`.
    Shareable,
    /// Three users on one gateway UE: one registration, three users each `full-access`.
    Gateway,
    /// The access token is refused: 403 with Warning 101 at steps 9/10; state stays `limited`.
    BadToken,
    /// The token expires: NOTIFY shows `expired`; the UE refreshes it and regains `full-access`.
    Expiry,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Basic => "basic",
            Self::MultiDevice => "multi-device",
            Self::Shareable => "shareable",
            Self::Gateway => "gateway",
            Self::BadToken => "bad-token",
            Self::Expiry => "expiry",
        })
    }
}

/// One user signing in on one UE, as a scenario prescribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// Label used in the ladder and the trace, e.g. `ue1/alice`.
    pub label: String,
    /// Label of the UE's own records (TLS, registration), e.g. `ue1`.
    pub ue: String,
    /// The steps this sign-in must show, in order: all 18 for the first user of a UE, or
    /// [`ON_REGISTERED_UE`] for a user signing in on a UE already registered.
    pub steps: &'static [u8],
    /// Public user identity of the UE (its certificate's URI SAN).
    pub public_user_identity: String,
    /// The UE's kind in the MCPTT server's directory.
    pub kind: UeKind,
    /// The IdMS user name.
    pub user: String,
    /// The combined service state this sign-in must end with (`full-access`, `limited`, …).
    pub final_state: &'static str,
    /// The authorisation state of the last NOTIFY it must see (`authorised`, `replaced`, …).
    pub final_authorisation: &'static str,
    /// An authorisation state some earlier NOTIFY must have shown (e.g. `expired`).
    pub must_see: Option<&'static str>,
}

/// Domain of the demo identities.
pub const DOMAIN: &str = "example.com";

fn sign_in(ue: &str, kind: UeKind, user: &str, state: &'static str, auth: &'static str) -> SignIn {
    SignIn {
        label: format!("{ue}/{user}"),
        ue: ue.to_owned(),
        steps: &ALL,
        public_user_identity: format!("sip:{ue}@{DOMAIN}"),
        kind,
        user: user.to_owned(),
        final_state: state,
        final_authorisation: auth,
        must_see: None,
    }
}

impl Scenario {
    /// The sign-ins the scenario runs, in order (later ones start after earlier ones reach
    /// their first full NOTIFY, so a takeover really happens second).
    #[must_use]
    pub fn sign_ins(self) -> Vec<SignIn> {
        use UeKind::{Gateway, Personal, Shareable};
        let mut list = match self {
            Self::Basic => vec![sign_in(
                "ue1",
                Personal,
                "alice",
                "full-access",
                "authorised",
            )],
            Self::MultiDevice => (1..=3)
                .map(|i| {
                    sign_in(
                        &format!("ue{i}"),
                        Personal,
                        "alice",
                        "full-access",
                        "authorised",
                    )
                })
                .collect(),
            Self::Shareable => vec![
                sign_in("ue1", Shareable, "alice", "limited", "replaced"),
                sign_in("ue1", Shareable, "bob", "full-access", "authorised"),
            ],
            Self::Gateway => ["alice", "bob", "carol"]
                .iter()
                .map(|u| sign_in("gw1", Gateway, u, "full-access", "authorised"))
                .collect(),
            Self::BadToken => {
                let mut s = sign_in("ue1", Personal, "alice", "limited", "unauthorised");
                s.steps = &BAD_TOKEN_STEPS;
                vec![s]
            }
            Self::Expiry => {
                let mut s = sign_in("ue1", Personal, "alice", "full-access", "authorised");
                s.must_see = Some("expired");
                vec![s]
            }
        };
        // Later users of an already registered UE skip steps 2–6.
        for i in 1..list.len() {
            if list[i].steps != ALL {
                continue;
            }
            let ue = list[i].ue.clone();
            if list[..i].iter().any(|s| s.ue == ue) {
                list[i].steps = &ON_REGISTERED_UE;
            }
        }
        list
    }

    /// For `--ues N`: N personal UEs, one user each (`user1`…`userN` on `ue1`…`ueN`).
    #[must_use]
    pub fn load(n: usize) -> Vec<SignIn> {
        (1..=n)
            .map(|i| {
                sign_in(
                    &format!("ue{i}"),
                    UeKind::Personal,
                    &format!("user{i}"),
                    "full-access",
                    "authorised",
                )
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_name_distinct_sign_ins() {
        assert_eq!(Scenario::MultiDevice.sign_ins().len(), 3);
        let gw = Scenario::Gateway.sign_ins();
        assert!(
            gw.iter()
                .all(|s| s.public_user_identity == "sip:gw1@example.com")
        );
        assert_eq!(
            Scenario::Shareable.sign_ins()[0].final_authorisation,
            "replaced"
        );
        assert_eq!(Scenario::Shareable.sign_ins()[1].steps, &ON_REGISTERED_UE);
        assert_eq!(gw[0].steps, &ALL);
        assert_eq!(gw[2].steps, &ON_REGISTERED_UE);
        assert!(
            Scenario::MultiDevice
                .sign_ins()
                .iter()
                .all(|s| s.steps == ALL)
        );
        assert_eq!(Scenario::load(5)[4].label, "ue5/user5");
        assert_eq!(Scenario::BadToken.to_string(), "bad-token");
    }
}

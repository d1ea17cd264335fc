//! The 18 steps of the flow (DESIGN.md §1) and the check that they all happened in order.
//!
//! ```text
//!  UE                SIP core          MCPTT server        IdMS
//!  |<================ step 1: login, code + PKCE, tokens ======>|
//!  |== 2: mutual TLS =>|                    |                  |
//!  |-- 3: REGISTER --->|                    |                  |
//!  |<-- 4: 200 --------|-- 5: REGISTER ---->|  (third party)   |
//!  |                   |<-- 6: 200 ---------|                  |
//!  |-- 7: PUBLISH ---->|-- 8: PUBLISH ----->|  (token, P-A-I)  |
//!  |<-- 10: 200 -------|<-- 9: 200 ---------|                  |
//!  |-- 11: SUBSCRIBE ->|-- 12: SUBSCRIBE -->|                  |
//!  |<-- 14: 200 -------|<-- 13: 200 --------|                  |
//!  |<-- 16: NOTIFY ----|<-- 15: NOTIFY -----|                  |
//!  |-- 17: 200 ------->|-- 18: 200 -------->|                  |
//! ```

use crate::trace::{Actor, Seen};

/// One step of the flow: who sends what to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepInfo {
    /// Step number, 1–18.
    pub number: u8,
    /// Sender.
    pub from: Actor,
    /// Receiver.
    pub to: Actor,
    /// Method (requests) or CSeq method (responses); `LOGIN` and `TLS` for steps 1 and 2.
    pub method: &'static str,
    /// Whether the step is a response.
    pub response: bool,
    /// What happens, in a few words.
    pub what: &'static str,
}

const fn step(
    number: u8,
    from: Actor,
    to: Actor,
    method: &'static str,
    response: bool,
    what: &'static str,
) -> StepInfo {
    StepInfo {
        number,
        from,
        to,
        method,
        response,
        what,
    }
}

use Actor::{Idms, McpttServer as As, SipCore as Sc, Ue};

/// Pseudo-method recorded for step 1 (the UE obtained tokens from the IdMS).
pub const LOGIN: &str = "LOGIN";
/// Pseudo-method recorded for step 2 (the SIP core accepted a mutually authenticated TLS connection).
pub const TLS: &str = "TLS";

/// The 18 steps of DESIGN.md §1.
pub const STEPS: [StepInfo; 18] = [
    step(
        1,
        Idms,
        Ue,
        LOGIN,
        false,
        "user authenticated at the IdMS; UE holds access, ID and refresh tokens",
    ),
    step(
        2,
        Ue,
        Sc,
        TLS,
        false,
        "mutual TLS: each side verified the other's certificate",
    ),
    step(
        3,
        Ue,
        Sc,
        "REGISTER",
        false,
        "UE registers its public user identity",
    ),
    step(
        4,
        Sc,
        Ue,
        "REGISTER",
        true,
        "registrar answers with the bindings",
    ),
    step(
        5,
        Sc,
        As,
        "REGISTER",
        false,
        "third-party REGISTER to the MCPTT server (message/sip body)",
    ),
    step(
        6,
        As,
        Sc,
        "REGISTER",
        true,
        "MCPTT server accepts the third-party REGISTER",
    ),
    step(
        7,
        Ue,
        Sc,
        "PUBLISH",
        false,
        "UE publishes poc-settings with its access token",
    ),
    step(
        8,
        Sc,
        As,
        "PUBLISH",
        false,
        "SIP core forwards with its own P-Asserted-Identity",
    ),
    step(
        9,
        As,
        Sc,
        "PUBLISH",
        true,
        "MCPTT server validated the token (SIP-ETag) or refused it",
    ),
    step(10, Sc, Ue, "PUBLISH", true, "answer relayed to the UE"),
    step(
        11,
        Ue,
        Sc,
        "SUBSCRIBE",
        false,
        "UE subscribes to its mcptt-service-state",
    ),
    step(
        12,
        Sc,
        As,
        "SUBSCRIBE",
        false,
        "SUBSCRIBE forwarded with P-Asserted-Identity",
    ),
    step(
        13,
        As,
        Sc,
        "SUBSCRIBE",
        true,
        "MCPTT server accepts the subscription",
    ),
    step(14, Sc, Ue, "SUBSCRIBE", true, "answer relayed to the UE"),
    step(
        15,
        As,
        Sc,
        "NOTIFY",
        false,
        "MCPTT server notifies the service state",
    ),
    step(16, Sc, Ue, "NOTIFY", false, "NOTIFY relayed to the UE"),
    step(17, Ue, Sc, "NOTIFY", true, "UE acknowledges the NOTIFY"),
    step(
        18,
        Sc,
        As,
        "NOTIFY",
        true,
        "acknowledgement relayed to the MCPTT server",
    ),
];

/// The step a message belongs to, from its sender, receiver and method (CSeq method for
/// responses). Messages outside the 18 steps (e.g. a CANCEL) give `None`. Refreshes and
/// de-registrations classify as the step of the same kind.
#[must_use]
pub fn classify(from: Actor, to: Actor, method: &str, response: bool) -> Option<u8> {
    STEPS
        .iter()
        .find(|s| {
            s.from == from
                && s.to == to
                && s.response == response
                && s.method.eq_ignore_ascii_case(method)
        })
        .map(|s| s.number)
}

/// Information about step `n` (1–18).
#[must_use]
pub fn info(n: u8) -> Option<&'static StepInfo> {
    STEPS.iter().find(|s| s.number == n)
}

/// Why the flow failed: the first step that did not happen (in order) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// The failed step (1–18).
    pub step: u8,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = info(self.step).map_or("", |s| s.what);
        write!(f, "step {} failed ({what}): {}", self.step, self.reason)
    }
}

/// All 18 steps.
pub const ALL: [u8; 18] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
];
/// The steps of a user signing in on a UE that is already connected and registered.
pub const ON_REGISTERED_UE: [u8; 13] = [1, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];

/// The steps each step causally follows (happens-before, DESIGN.md §1). The numbering is a
/// logical order, not a total one: the answer to the SUBSCRIBE (14) and the first NOTIFY (15)
/// travel at the same time on different legs, as do the answer to the third-party REGISTER (6)
/// and the UE's PUBLISH (7). Everything else is a chain.
#[must_use]
pub fn predecessors(n: u8) -> &'static [u8] {
    match n {
        2 => &[1],
        3 => &[2],
        4 | 5 => &[3],
        6 => &[5],
        7 => &[4],
        15 => &[13],
        16 => &[14, 15],
        n if (8..=18).contains(&n) => {
            const CHAIN: [[u8; 1]; 19] = [
                [0],
                [0],
                [0],
                [0],
                [0],
                [0],
                [0],
                [0],
                [7],
                [8],
                [9],
                [10],
                [11],
                [12],
                [13],
                [0],
                [0],
                [16],
                [17],
            ];
            CHAIN.get(usize::from(n)).map_or(&[], |p| p.as_slice())
        }
        _ => &[],
    }
}

/// The predecessors of `n` restricted to `expected`: a predecessor outside it is replaced by
/// its own predecessors (e.g. a user signing in on an already registered UE publishes after
/// its login: 7 follows 1 when 2–6 are not expected).
fn effective_predecessors(n: u8, expected: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut todo: Vec<u8> = predecessors(n).to_vec();
    while let Some(p) = todo.pop() {
        if expected.contains(&p) {
            if !out.contains(&p) {
                out.push(p);
            }
        } else {
            todo.extend_from_slice(predecessors(p));
        }
    }
    out
}

/// Checks that `records` contain every `expected` step, each (its first occurrence after its
/// predecessors) after the steps it causally follows ([`predecessors`]). Returns the first
/// step, in `expected` order, that did not happen in order.
pub fn check_order(records: &[Seen], expected: &[u8]) -> Result<(), StepFailure> {
    let mut at: Vec<(u8, usize)> = Vec::with_capacity(expected.len());
    for &n in expected {
        let preds = effective_predecessors(n, expected);
        let mut after = 0usize;
        for p in &preds {
            match at.iter().find(|(s, _)| s == p) {
                Some(&(_, i)) => after = after.max(i + 1),
                None => {
                    return Err(StepFailure {
                        step: *p,
                        reason: format!("step {p} never happened"),
                    });
                }
            }
        }
        match records
            .iter()
            .enumerate()
            .skip(after)
            .find(|(_, r)| r.step == Some(n))
        {
            Some((i, _)) => at.push((n, i)),
            None => {
                let seen_elsewhere = records.iter().any(|r| r.step == Some(n));
                let names = preds
                    .iter()
                    .map(|p| format!("step {p}"))
                    .collect::<Vec<_>>()
                    .join(" and ");
                let reason = match (preds.is_empty(), seen_elsewhere) {
                    (true, _) => format!("step {n} never happened"),
                    (false, true) => format!("step {n} was seen, but not after {names}"),
                    (false, false) => format!("step {n} never happened after {names}"),
                };
                return Err(StepFailure { step: n, reason });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn seen(step: u8) -> Seen {
        Seen {
            seq: 0,
            at: std::time::Duration::ZERO,
            observer: Ue,
            from: Ue,
            to: Ue,
            ue: String::new(),
            step: Some(step),
            method: String::new(),
            status: None,
            first_line: String::new(),
            headers: Vec::new(),
            body: String::new(),
            full: String::new(),
        }
    }

    #[test]
    fn every_step_classifies_to_itself() {
        for (i, s) in STEPS.iter().enumerate() {
            assert_eq!(usize::from(s.number), i + 1);
            assert_eq!(classify(s.from, s.to, s.method, s.response), Some(s.number));
        }
        assert_eq!(classify(Ue, Sc, "INVITE", false), None);
        assert_eq!(classify(Sc, Ue, "register", true), Some(4));
    }

    #[test]
    fn order_check_names_the_first_missing_step() {
        let all: Vec<Seen> = (1..=18).map(seen).collect();
        assert_eq!(check_order(&all, &ALL), Ok(()));
        let mut missing: Vec<Seen> = (1..=18).filter(|&n| n != 9).map(seen).collect();
        assert_eq!(check_order(&missing, &ALL).map_err(|e| e.step), Err(9));
        missing.insert(2, seen(9));
        let err = check_order(&missing, &ALL);
        assert_eq!(err.as_ref().map_err(|e| e.step), Err(9));
        assert!(err.is_err_and(|e| e.reason.contains("not after step 8")));
        // 14 and 15 race, as do 6 and 7: both orders pass.
        let raced: Vec<Seen> = [
            1, 2, 3, 4, 5, 7, 6, 8, 9, 10, 11, 12, 13, 15, 14, 16, 17, 18,
        ]
        .into_iter()
        .map(seen)
        .collect();
        assert_eq!(check_order(&raced, &ALL), Ok(()));
        // ...but 16 must follow both 14 and 15.
        let early: Vec<Seen> = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 14, 17, 18,
        ]
        .into_iter()
        .map(seen)
        .collect();
        assert_eq!(check_order(&early, &ALL).map_err(|e| e.step), Err(16));
        assert_eq!(check_order(&[], &ALL).map_err(|e| e.step), Err(1));
        let later: Vec<Seen> = ON_REGISTERED_UE.iter().map(|&n| seen(n)).collect();
        assert_eq!(check_order(&later, &ON_REGISTERED_UE), Ok(()));
        assert_eq!(check_order(&later, &ALL).map_err(|e| e.step), Err(2));
        let bad: Vec<Seen> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
            .into_iter()
            .map(seen)
            .collect();
        assert_eq!(
            check_order(&bad, &bad.iter().filter_map(|s| s.step).collect::<Vec<_>>()),
            Ok(())
        );
    }
}

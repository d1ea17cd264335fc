//! The ladder printer (UE | SIP core | MCPTT server | IdMS columns) and the Mermaid writer.
//!
//! Both render [`Seen`] records from a [`Trace`](crate::trace::Trace): one line per message, each
//! starting `[step N]` when the message belongs to one of the 18 steps, with the real first line
//! and the key headers recorded by the receiving actor.

use std::fmt::Write as _;

use crate::trace::{Actor, Seen};

/// Column of each actor's lane in the ASCII drawing.
const LANE: [usize; 4] = [2, 20, 38, 56];
/// Width of the lane drawing.
const WIDTH: usize = 60;
/// Width of the `[step NN]` label.
const LABEL: usize = 9;

/// How much of each message the ladder shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// First line only.
    FirstLine,
    /// First line and key headers (the default).
    #[default]
    KeyHeaders,
    /// The whole message (`--verbose`).
    Full,
}

fn lanes() -> Vec<char> {
    let mut row = vec![' '; WIDTH];
    for &x in &LANE {
        row[x] = '|';
    }
    row
}

fn arrow(from: Actor, to: Actor) -> String {
    let mut row = lanes();
    let (a, b) = (LANE[from.column()], LANE[to.column()]);
    if a == b {
        row[a] = '*';
    } else if a < b {
        for c in &mut row[a + 1..b] {
            *c = '-';
        }
        row[b - 1] = '>';
    } else {
        for c in &mut row[b + 1..a] {
            *c = '-';
        }
        row[b + 1] = '<';
    }
    row.into_iter().collect()
}

fn blank_lanes() -> String {
    lanes().into_iter().collect()
}

/// The column titles, aligned over the lanes.
#[must_use]
pub fn header() -> String {
    let mut row = vec![' '; WIDTH + 14];
    for a in Actor::ALL {
        let name = a.name();
        let start = (LANE[a.column()] + LABEL + 1).saturating_sub(name.len() / 2);
        for (i, ch) in name.chars().enumerate() {
            if let Some(c) = row.get_mut(start + i) {
                *c = ch;
            }
        }
    }
    let s: String = row.into_iter().collect();
    s.trim_end().to_owned()
}

fn step_label(s: &Seen) -> String {
    s.step
        .map_or_else(|| " ".repeat(LABEL), |n| format!("[step {n:>2}]"))
}

/// Renders one record as ladder lines (no trailing newline on the last line).
#[must_use]
pub fn render(s: &Seen, detail: Detail, show_ue: bool) -> String {
    let mut out = String::new();
    let ue = if show_ue && !s.ue.is_empty() {
        format!("{}: ", s.ue)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "{} {}  {ue}{}",
        step_label(s),
        arrow(s.from, s.to),
        s.first_line
    );
    let pad = format!("{} {}    ", " ".repeat(LABEL), blank_lanes());
    match detail {
        Detail::FirstLine => {}
        Detail::KeyHeaders => {
            for (n, v) in &s.headers {
                let _ = write!(out, "\n{pad}{n}: {v}");
            }
        }
        Detail::Full => {
            let text = if s.full.is_empty() {
                &s.first_line
            } else {
                &s.full
            };
            for line in text.lines().skip(1) {
                let _ = write!(out, "\n{pad}{line}");
            }
        }
    }
    out
}

/// Whether the records concern more than one sign-in (`ue/user` label), so lines name theirs.
fn several_sign_ins(records: &[Seen]) -> bool {
    records
        .iter()
        .map(|s| s.ue.as_str())
        .filter(|u| u.contains('/'))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        > 1
}

/// Renders the whole ladder: column header, then one entry per record.
#[must_use]
pub fn render_all(records: &[Seen], detail: Detail) -> String {
    let show_ue = several_sign_ins(records);
    let mut out = header();
    out.push('\n');
    for s in records {
        out.push_str(&render(s, detail, show_ue));
        out.push('\n');
    }
    out
}

/// Escapes text for a Mermaid message label (`;`, `#`, `<`, `>` and `:` use entity codes).
#[must_use]
pub fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            ':' => out.push_str("#58;"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The run as a Mermaid sequence diagram (renders on code-hosting sites and in docs).
#[must_use]
pub fn mermaid(records: &[Seen]) -> String {
    let mut out = String::from("sequenceDiagram\n");
    for a in Actor::ALL {
        let _ = writeln!(out, "    participant {} as {}", a.id(), a.name());
    }
    let show_ue = several_sign_ins(records);
    for s in records {
        let arrow = if s.is_response() { "-->>" } else { "->>" };
        let label = match s.step {
            Some(n) => format!("[step {n}] "),
            None => String::new(),
        };
        let ue = if show_ue && !s.ue.is_empty() {
            format!("{}  ", s.ue)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "    {}{arrow}{}: {}",
            s.from.id(),
            s.to.id(),
            mermaid_escape(&format!("{label}{ue}{}", s.first_line))
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::trace::{Observation, Trace};

    fn sample() -> Vec<Seen> {
        let t = Trace::new();
        t.record(
            Actor::SipCore,
            Observation {
                from: Some(Actor::Ue),
                ue: "ue1".into(),
                method: "REGISTER".into(),
                first_line: "REGISTER sip:example.com SIP/2.0".into(),
                headers: vec![("Expires".into(), "600".into())],
                ..Observation::default()
            },
        );
        t.record(
            Actor::Ue,
            Observation {
                from: Some(Actor::SipCore),
                ue: "ue1".into(),
                method: "REGISTER".into(),
                status: Some(200),
                first_line: "SIP/2.0 200 OK".into(),
                ..Observation::default()
            },
        );
        t.snapshot()
    }

    #[test]
    fn ladder_lines_start_with_the_step_and_point_the_right_way() {
        let text = render_all(&sample(), Detail::KeyHeaders);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("UE") && lines[0].contains("MCPTT server"));
        assert!(lines[1].starts_with("[step  3]"));
        assert!(lines[1].contains("->|") && lines[1].ends_with("REGISTER sip:example.com SIP/2.0"));
        assert!(lines[2].trim_end().ends_with("Expires: 600"));
        assert!(lines[3].starts_with("[step  4]"));
        assert!(lines[3].contains("|<-"));
    }

    #[test]
    fn mermaid_has_participants_and_escaped_messages() {
        let m = mermaid(&sample());
        assert!(m.starts_with("sequenceDiagram\n"));
        assert!(m.contains("participant SC as SIP core"));
        assert!(m.contains("UE->>SC: [step 3] REGISTER sip#58;example.com SIP/2.0"));
        assert!(m.contains("SC-->>UE: [step 4] SIP/2.0 200 OK"));
        assert_eq!(mermaid_escape("a;b<c>#"), "a#59;b#lt;c#gt;#35;");
    }
}

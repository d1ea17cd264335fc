//! `application/poc-settings+xml` (OMA PoC settings as used by TS 24.379 §7.2), the common subset.

use crate::error::{BodyKind, Error};
use crate::xml::{self, Element, XmlLimits};

/// XML namespace of the poc-settings document.
pub const POC_SETTINGS_NS: &str = "urn:oma:params:xml:ns:poc:poc-settings";

/// Answer mode of an MCPTT client (`<am-settings><answer-mode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnswerMode {
    /// `automatic`: private calls are answered automatically.
    Automatic,
    /// `manual`: the user answers.
    Manual,
}

/// The settings of one client instance (`<entity id="…">`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PocEntity {
    /// The `id` attribute: the client instance the settings belong to.
    pub id: String,
    /// `<am-settings><answer-mode>`.
    pub answer_mode: Option<AnswerMode>,
    /// `<ipab-settings><incoming-personal-alert-barring active="…"/>`.
    pub incoming_personal_alert_barring: Option<bool>,
    /// `<sess-part-settings><allow-sess-part active="…"/>`.
    pub allow_session_participation: Option<bool>,
}

/// A poc-settings document: a list of entities. Unknown elements are ignored.
///
/// ```
/// use mcptt_service_state::body::{AnswerMode, PocEntity, PocSettings};
/// let s = PocSettings { entities: vec![PocEntity {
///     id: "urn:uuid:00000000-0000-0000-0000-000000000001".into(),
///     answer_mode: Some(AnswerMode::Automatic),
///     ..PocEntity::default()
/// }] };
/// assert_eq!(PocSettings::parse(s.encode().as_bytes())?, s);
/// # Ok::<(), mcptt_service_state::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PocSettings {
    /// The `<entity>` elements in document order.
    pub entities: Vec<PocEntity>,
}

fn bad(what: impl Into<String>) -> Error {
    Error::MalformedBody {
        kind: BodyKind::PocSettings,
        offset: 0,
        what: what.into(),
    }
}

fn active(el: Option<&Element>) -> Result<Option<bool>, Error> {
    let Some(el) = el else { return Ok(None) };
    match el.attr("active") {
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        _ => Err(bad(format!(
            "active=\"true\" or \"false\" on <{}>",
            el.name
        ))),
    }
}

impl PocSettings {
    /// Parses a document with the default [`XmlLimits`].
    ///
    /// # Errors
    /// [`Error::MalformedBody`] for bad XML or schema violations, limit errors beyond the limits.
    pub fn parse(input: &[u8]) -> Result<Self, Error> {
        Self::parse_with(input, &XmlLimits::default())
    }

    /// Parses a document with the given limits.
    ///
    /// # Errors
    /// As [`PocSettings::parse`].
    pub fn parse_with(input: &[u8], limits: &XmlLimits) -> Result<Self, Error> {
        let ns = POC_SETTINGS_NS;
        let root = xml::parse(BodyKind::PocSettings, input, limits)?;
        if !root.is(ns, "poc-settings") {
            return Err(bad(format!("root element <poc-settings xmlns=\"{ns}\">")));
        }
        let mut out = Self::default();
        for entity in root.children.iter().filter(|c| c.is(ns, "entity")) {
            let id = entity
                .attr("id")
                .ok_or_else(|| bad("an id attribute on <entity>"))?;
            let answer_mode = match entity
                .child(ns, "am-settings")
                .and_then(|a| a.child(ns, "answer-mode"))
                .map(|m| m.text.trim())
            {
                None => None,
                Some("automatic") => Some(AnswerMode::Automatic),
                Some("manual") => Some(AnswerMode::Manual),
                Some(_) => return Err(bad("answer-mode automatic or manual")),
            };
            out.entities.push(PocEntity {
                id: id.to_owned(),
                answer_mode,
                incoming_personal_alert_barring: active(
                    entity
                        .child(ns, "ipab-settings")
                        .and_then(|s| s.child(ns, "incoming-personal-alert-barring")),
                )?,
                allow_session_participation: active(
                    entity
                        .child(ns, "sess-part-settings")
                        .and_then(|s| s.child(ns, "allow-sess-part")),
                )?,
            });
        }
        Ok(out)
    }

    /// Encodes the document (UTF-8, with an XML declaration).
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<poc-settings xmlns=\"{POC_SETTINGS_NS}\">\n"
        );
        for e in &self.entities {
            out.push_str(&format!("<entity id=\"{}\">\n", xml::escape(&e.id)));
            if let Some(mode) = e.answer_mode {
                let mode = match mode {
                    AnswerMode::Automatic => "automatic",
                    AnswerMode::Manual => "manual",
                };
                out.push_str(&format!(
                    "<am-settings><answer-mode>{mode}</answer-mode></am-settings>\n"
                ));
            }
            if let Some(a) = e.incoming_personal_alert_barring {
                out.push_str(&format!(
                    "<ipab-settings><incoming-personal-alert-barring active=\"{a}\"/></ipab-settings>\n"
                ));
            }
            if let Some(a) = e.allow_session_participation {
                out.push_str(&format!(
                    "<sess-part-settings><allow-sess-part active=\"{a}\"/></sess-part-settings>\n"
                ));
            }
            out.push_str("</entity>\n");
        }
        out.push_str("</poc-settings>\n");
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_oma_example() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings">
  <entity id="do39s8zksn2d98x">
    <am-settings><answer-mode>manual</answer-mode></am-settings>
    <ipab-settings><incoming-personal-alert-barring active="false"/></ipab-settings>
    <sess-part-settings><allow-sess-part active="true"/></sess-part-settings>
    <other-settings/>
  </entity>
</poc-settings>"#;
        let s = PocSettings::parse(doc).unwrap();
        assert_eq!(
            s.entities,
            vec![PocEntity {
                id: "do39s8zksn2d98x".into(),
                answer_mode: Some(AnswerMode::Manual),
                incoming_personal_alert_barring: Some(false),
                allow_session_participation: Some(true),
            }]
        );
        assert_eq!(PocSettings::parse(s.encode().as_bytes()).unwrap(), s);
    }

    #[test]
    fn schema_errors() {
        let no_id = br#"<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings"><entity/></poc-settings>"#;
        assert!(matches!(
            PocSettings::parse(no_id),
            Err(Error::MalformedBody { .. })
        ));
        let bad_mode = br#"<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings"><entity id="x"><am-settings><answer-mode>maybe</answer-mode></am-settings></entity></poc-settings>"#;
        assert!(matches!(
            PocSettings::parse(bad_mode),
            Err(Error::MalformedBody { .. })
        ));
    }
}

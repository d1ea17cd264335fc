//! `application/poc-settings+xml` (OMA PoC settings as used by TS 24.379 §7.2), the common subset.

use crate::error::{BodyKind, Error};
use std::borrow::Cow;

use crate::xml::{self, Step, Template, XmlLimits};

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

/// The start of every document [`PocSettings::encode`] writes.
const CANONICAL_HEAD_STR: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<poc-settings xmlns=\"",
    "urn:oma:params:xml:ns:poc:poc-settings",
    "\">\n"
);
const CANONICAL_HEAD: &[u8] = CANONICAL_HEAD_STR.as_bytes();

fn bad(what: impl Into<String>) -> Error {
    Error::MalformedBody {
        kind: BodyKind::PocSettings,
        offset: 0,
        what: what.into(),
    }
}

/// An `active` attribute value (`None` when the attribute is missing or not a boolean).
fn active(value: Option<&str>) -> Option<bool> {
    match value {
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        _ => None,
    }
}

fn active_error(element: &str) -> Error {
    bad(format!("active=\"true\" or \"false\" on <{element}>"))
}

/// What the walk saw of one `<entity>` (only the first of each settings element counts).
#[derive(Debug, Default)]
struct EntityState {
    id: Option<String>,
    /// Depth-2 container the walk is in: 1 am-settings, 2 ipab-settings, 3 sess-part-settings.
    container: u8,
    am_seen: bool,
    ipab_seen: bool,
    sess_seen: bool,
    /// `answer-mode` seen (its text is in the shared buffer while open).
    mode_seen: bool,
    capturing: bool,
    mode: Option<Result<AnswerMode, ()>>,
    ipab: Option<Option<bool>>,
    sess: Option<Option<bool>>,
}

impl EntityState {
    fn finish(self) -> Result<PocEntity, Error> {
        let id = self.id.ok_or_else(|| bad("an id attribute on <entity>"))?;
        let answer_mode = match self.mode {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(())) => return Err(bad("answer-mode automatic or manual")),
        };
        let incoming_personal_alert_barring = match self.ipab {
            None => None,
            Some(Some(b)) => Some(b),
            Some(None) => return Err(active_error("incoming-personal-alert-barring")),
        };
        let allow_session_participation = match self.sess {
            None => None,
            Some(Some(b)) => Some(b),
            Some(None) => return Err(active_error("allow-sess-part")),
        };
        Ok(PocEntity {
            id,
            answer_mode,
            incoming_personal_alert_barring,
            allow_session_participation,
        })
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
        if let Some(settings) = Self::read_canonical(input, limits) {
            return Ok(settings);
        }
        match Self::read(input, limits, true)? {
            Some(settings) => Ok(settings),
            None => Self::read(input, limits, false)?.ok_or_else(|| bad("a readable document")),
        }
    }

    /// The document in the exact form [`PocSettings::encode`] writes (ids without markup
    /// characters), matched as a [`Template`]; `None` for anything else (then the XML readers
    /// decide; they read these documents alike, which tests check).
    fn read_canonical(input: &[u8], limits: &XmlLimits) -> Option<Self> {
        let mut t = Template::new(input, limits)?;
        t.lit(CANONICAL_HEAD)?;
        let mut out = Self::default();
        let mut elements = 1usize;
        let flag = |t: &mut Template<'_>| {
            if t.eat(b"true\"") {
                Some(true)
            } else {
                t.lit(b"false\"")?;
                Some(false)
            }
        };
        while t.eat(b"<entity id=\"") {
            let id = t.attr()?;
            t.lit(b"\">\n")?;
            elements += 1;
            let mut entity = PocEntity {
                id: id.to_owned(),
                ..PocEntity::default()
            };
            if t.eat(b"<am-settings><answer-mode>") {
                // `trim_ascii`: as `str::trim` on a hole (its only white space is ASCII).
                entity.answer_mode = Some(match t.text()?.trim_ascii() {
                    "automatic" => AnswerMode::Automatic,
                    "manual" => AnswerMode::Manual,
                    _ => return None,
                });
                t.lit(b"</answer-mode></am-settings>\n")?;
                elements += 2;
            }
            if t.eat(b"<ipab-settings><incoming-personal-alert-barring active=\"") {
                entity.incoming_personal_alert_barring = Some(flag(&mut t)?);
                t.lit(b"/></ipab-settings>\n")?;
                elements += 2;
            }
            if t.eat(b"<sess-part-settings><allow-sess-part active=\"") {
                entity.allow_session_participation = Some(flag(&mut t)?);
                t.lit(b"/></sess-part-settings>\n")?;
                elements += 2;
            }
            t.lit(b"</entity>\n")?;
            if elements > limits.max_elements {
                return None;
            }
            if out.entities.capacity() == 0 {
                // Most documents hold one entity: room for exactly that at first.
                out.entities = Vec::with_capacity(1);
            }
            out.entities.push(entity);
        }
        t.lit(b"</poc-settings>\n")?;
        t.done().then_some(out)
    }

    /// One pass over the document with the simple reader (`None` when the document needs the
    /// full one) or the full reader.
    fn read(input: &[u8], limits: &XmlLimits, simple: bool) -> Result<Option<Self>, Error> {
        // One streaming pass (no tree); schema errors are reported after the document is
        // known to be well-formed, the first entity's first.
        let ns = POC_SETTINGS_NS;
        let mut root_ok = false;
        let mut out = Self::default();
        let mut failed: Option<Error> = None;
        let mut entity: Option<EntityState> = None;
        let mut text = String::new();
        let completed =
            xml::walk_either(
                BodyKind::PocSettings,
                input,
                limits,
                simple,
                |step| match step {
                    Step::Start {
                        depth,
                        ns: el_ns,
                        name,
                        attrs,
                    } => {
                        let ours = el_ns == Some(ns);
                        match (depth, entity.as_mut()) {
                            (0, _) => root_ok = ours && name == b"poc-settings",
                            (1, _) if root_ok && ours && name == b"entity" && failed.is_none() => {
                                entity = Some(EntityState {
                                    id: attrs.get(b"id").map(Cow::into_owned),
                                    ..EntityState::default()
                                });
                            }
                            (2, Some(e)) if ours => {
                                e.container = match name {
                                    b"am-settings" if !e.am_seen => {
                                        e.am_seen = true;
                                        1
                                    }
                                    b"ipab-settings" if !e.ipab_seen => {
                                        e.ipab_seen = true;
                                        2
                                    }
                                    b"sess-part-settings" if !e.sess_seen => {
                                        e.sess_seen = true;
                                        3
                                    }
                                    _ => 0,
                                };
                            }
                            (3, Some(e)) if ours => match (e.container, name) {
                                (1, b"answer-mode") if !e.mode_seen => {
                                    e.mode_seen = true;
                                    e.capturing = true;
                                    text.clear();
                                }
                                (2, b"incoming-personal-alert-barring") if e.ipab.is_none() => {
                                    e.ipab = Some(active(attrs.get(b"active").as_deref()));
                                }
                                (3, b"allow-sess-part") if e.sess.is_none() => {
                                    e.sess = Some(active(attrs.get(b"active").as_deref()));
                                }
                                _ => {}
                            },
                            _ => {}
                        }
                    }
                    Step::Text { depth: 3, text: t } => {
                        if entity.as_ref().is_some_and(|e| e.capturing) {
                            text.push_str(t);
                        }
                    }
                    Step::Text { .. } => {}
                    Step::End { depth } => match (depth, entity.as_mut()) {
                        (1, Some(_)) => {
                            if let Some(e) = entity.take() {
                                match e.finish() {
                                    Ok(e) => out.entities.push(e),
                                    Err(err) => failed = Some(err),
                                }
                            }
                        }
                        (2, Some(e)) => e.container = 0,
                        (3, Some(e)) if e.capturing => {
                            e.capturing = false;
                            e.mode = Some(match text.trim() {
                                "automatic" => Ok(AnswerMode::Automatic),
                                "manual" => Ok(AnswerMode::Manual),
                                _ => Err(()),
                            });
                        }
                        _ => {}
                    },
                },
            )?;
        if !completed {
            return Ok(None);
        }
        if !root_ok {
            return Err(bad(format!("root element <poc-settings xmlns=\"{ns}\">")));
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(Some(out)),
        }
    }

    /// Encodes the document (UTF-8, with an XML declaration).
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::from(CANONICAL_HEAD_STR);
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

    #[test]
    fn first_settings_element_counts_and_entity_errors_come_in_order() {
        let doc = br#"<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings">
<entity id="a"><am-settings><x/></am-settings><am-settings><answer-mode>manual</answer-mode></am-settings>
<ipab-settings><incoming-personal-alert-barring active="1"/><incoming-personal-alert-barring active="0"/></ipab-settings></entity>
<entity id="b&amp;c"><am-settings><answer-mode> auto<!-- c -->matic </answer-mode></am-settings></entity>
</poc-settings>"#;
        let s = PocSettings::parse(doc).unwrap();
        assert_eq!(s.entities.len(), 2);
        assert_eq!(s.entities[0].answer_mode, None);
        assert_eq!(s.entities[0].incoming_personal_alert_barring, Some(true));
        assert_eq!(s.entities[1].id, "b&c");
        assert_eq!(s.entities[1].answer_mode, Some(AnswerMode::Automatic));
        let bad_active = br#"<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings"><entity id="x"><sess-part-settings><allow-sess-part active="yes"/></sess-part-settings></entity><entity/></poc-settings>"#;
        let err = PocSettings::parse(bad_active).unwrap_err();
        assert!(err.to_string().contains("allow-sess-part"), "{err}");
        // Well-formedness errors are reported before schema errors.
        let broken = br#"<poc-settings xmlns="urn:oma:params:xml:ns:poc:poc-settings"><entity/><a></b></poc-settings>"#;
        let err = PocSettings::parse(broken).unwrap_err();
        assert!(err.to_string().contains("well-formed"), "{err}");
    }

    #[test]
    fn canonical_head_names_the_namespace() {
        assert!(CANONICAL_HEAD_STR.contains(&format!("xmlns=\"{POC_SETTINGS_NS}\"")));
        let two = PocSettings {
            entities: vec![PocEntity::default(), PocEntity::default()],
        };
        let doc = two.encode();
        assert_eq!(
            PocSettings::read_canonical(doc.as_bytes(), &XmlLimits::default()),
            Some(two)
        );
        // An element limit the document exceeds leaves it to the XML readers (which refuse it).
        let tight = XmlLimits {
            max_elements: 2,
            ..XmlLimits::default()
        };
        assert_eq!(PocSettings::read_canonical(doc.as_bytes(), &tight), None);
        assert!(matches!(
            PocSettings::parse_with(doc.as_bytes(), &tight),
            Err(Error::BodyLimit { .. })
        ));
    }

    fn entity() -> impl proptest::strategy::Strategy<Value = PocEntity> {
        use proptest::prelude::*;
        (
            "[ a-zA-Z0-9:._\t\n<&\"'-]{0,16}",
            proptest::option::of(prop_oneof![
                Just(AnswerMode::Automatic),
                Just(AnswerMode::Manual)
            ]),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(id, answer_mode, ipab, sess)| PocEntity {
                id,
                answer_mode,
                incoming_personal_alert_barring: ipab,
                allow_session_participation: sess,
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// What `encode` writes is read by the template exactly as the full reader reads it;
        /// ids with markup, tab or line feed are left to the XML readers.
        #[test]
        fn canonical_reads_what_the_full_reader_reads(
            entities in proptest::collection::vec(entity(), 0..4),
        ) {
            let settings = PocSettings { entities };
            let doc = settings.encode();
            let limits = XmlLimits::default();
            let fast = PocSettings::read_canonical(doc.as_bytes(), &limits);
            let plain = settings.entities.iter().all(|e| {
                e.id.bytes().all(|b| b == b' ' || (b.is_ascii_graphic() && !b"<>&\"'".contains(&b)))
            });
            proptest::prop_assert_eq!(fast.is_some(), plain);
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(&fast, &settings);
                proptest::prop_assert_eq!(Some(fast), PocSettings::read(doc.as_bytes(), &limits, false).unwrap());
            }
        }

        /// Any edit of a canonical document that the template still accepts is read as the
        /// full reader reads it.
        #[test]
        fn canonical_agrees_on_edited_documents(
            edits in proptest::collection::vec((0usize..500, 0u8..4, proptest::sample::select(b" \n\t<>&\"/=xa1\r\x01\xc3".to_vec())), 1..4),
        ) {
            let settings = PocSettings { entities: vec![PocEntity {
                id: "urn:uuid:1".into(),
                answer_mode: Some(AnswerMode::Manual),
                incoming_personal_alert_barring: Some(true),
                allow_session_participation: Some(false),
            }] };
            let mut doc = settings.encode().into_bytes();
            crate::body::apply_edits(&mut doc, &edits);
            let limits = XmlLimits::default();
            if let Some(fast) = PocSettings::read_canonical(&doc, &limits) {
                proptest::prop_assert_eq!(Some(fast), PocSettings::read(&doc, &limits, false).unwrap());
            }
        }
    }
}

//! Initial-filter-criteria style matching (in the spirit of 3GPP TS 29.228 iFC): which
//! application servers receive a third-party REGISTER.

/// The MCPTT feature tag (TS 24.379 §5.2).
pub const MCPTT_FEATURE_TAG: &str = "+g.3gpp.mcptt";
/// The ICSI feature tag name (RFC 3840 style, TS 24.229 §7.9.2).
pub const ICSI_FEATURE_TAG: &str = "+g.3gpp.icsi-ref";
/// The MCPTT ICSI (TS 24.379 §5.2).
pub const MCPTT_ICSI: &str = "urn:urn-7:3gpp-service.ims.icsi.mcptt";

/// What the SIP core does when the application server fails a third-party REGISTER or
/// does not answer in time (TS 29.228 "default handling").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailurePolicy {
    /// Keep the UE registered (`SESSION_CONTINUED`); only report the failure.
    #[default]
    Keep,
    /// Deregister the bindings the third-party REGISTER was about (`SESSION_TERMINATED`).
    Deregister,
}

/// One filter: a request method and a Contact feature tag (optionally with one of its
/// values) leading to an application server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterCriteria {
    /// Method the filter applies to (`REGISTER`).
    pub method: String,
    /// Contact feature tag name that must be present (e.g. `+g.3gpp.mcptt`).
    pub feature_tag: String,
    /// When set, one of the tag's values (comma-separated, quoted, %-escaped on the wire)
    /// must equal this after unescaping (e.g. the MCPTT ICSI for `+g.3gpp.icsi-ref`).
    pub value: Option<String>,
    /// The application server's SIP URI (Request-URI of the third-party REGISTER).
    pub application_server: String,
    /// What to do when the application server fails.
    pub default_handling: FailurePolicy,
}

impl FilterCriteria {
    /// REGISTER with the `+g.3gpp.mcptt` feature tag → `application_server`.
    #[must_use]
    pub fn mcptt(application_server: impl Into<String>) -> Self {
        Self {
            method: "REGISTER".into(),
            feature_tag: MCPTT_FEATURE_TAG.into(),
            value: None,
            application_server: application_server.into(),
            default_handling: FailurePolicy::Keep,
        }
    }

    /// REGISTER with the MCPTT ICSI in `+g.3gpp.icsi-ref` → `application_server`.
    #[must_use]
    pub fn mcptt_icsi(application_server: impl Into<String>) -> Self {
        Self {
            method: "REGISTER".into(),
            feature_tag: ICSI_FEATURE_TAG.into(),
            value: Some(MCPTT_ICSI.into()),
            application_server: application_server.into(),
            default_handling: FailurePolicy::Keep,
        }
    }

    /// Sets the failure policy.
    #[must_use]
    pub fn with_default_handling(mut self, policy: FailurePolicy) -> Self {
        self.default_handling = policy;
        self
    }

    /// Whether a request with `method` and one Contact's parameters (name, optional raw
    /// value) matches.
    #[must_use]
    pub fn matches<'a, I>(&self, method: &str, params: I) -> bool
    where
        I: IntoIterator<Item = (&'a str, Option<&'a str>)>,
    {
        if !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        params.into_iter().any(|(name, value)| {
            name.eq_ignore_ascii_case(&self.feature_tag)
                && match (&self.value, value) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(want), Some(v)) => tag_values(v).any(|x| x == *want),
                }
        })
    }
}

/// Splits a feature tag value (`"a,b"`, possibly quoted and %-escaped) into unescaped
/// values.
pub(crate) fn tag_values(raw: &str) -> impl Iterator<Item = String> + '_ {
    let raw = raw.trim();
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    inner
        .split(',')
        .map(|v| mcptt_sip::unescape(v.trim()).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mcptt_tag_and_icsi() {
        let p = [
            ("+sip.instance", Some("\"<urn:uuid:1>\"")),
            ("+g.3gpp.mcptt", None),
            (
                "+g.3gpp.icsi-ref",
                Some(
                    "\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel,urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt\"",
                ),
            ),
        ];
        assert!(FilterCriteria::mcptt("sip:as").matches("REGISTER", p));
        assert!(FilterCriteria::mcptt_icsi("sip:as").matches("register", p));
        assert!(!FilterCriteria::mcptt("sip:as").matches("INVITE", p));
        let other = [(
            "+g.3gpp.icsi-ref",
            Some("\"urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel\""),
        )];
        assert!(!FilterCriteria::mcptt_icsi("sip:as").matches("REGISTER", other));
        assert!(!FilterCriteria::mcptt("sip:as").matches("REGISTER", other));
        assert!(
            !FilterCriteria::mcptt_icsi("sip:as").matches("REGISTER", [("+g.3gpp.icsi-ref", None)])
        );
    }
}

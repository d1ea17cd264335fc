//! Bodies of the service-authorisation flow: parse and encode.
//!
//! - [`McpttInfo`] — `application/vnd.3gpp.mcptt-info+xml` (access token, client id, request URI);
//! - [`PocSettings`] — `application/poc-settings+xml`;
//! - [`ServiceState`] — `application/vnd.mcptt-service-state+json`, this project's NOTIFY body;
//! - [`PublishBody`] — the PUBLISH body, either `multipart/mixed` with the two XML parts or a single part.
//!
//! XML is read in one streaming pass over the borrowed bytes (namespace prefixes resolved only
//! as far as telling this crate's namespaces apart; no tree, nothing allocated per element):
//! documents in the plain form clients write (standard declaration, plain names and
//! attributes, no comment, CDATA, entity reference or DOCTYPE) by a byte scanner, everything
//! else by `quick-xml`'s reader, which decides and reports errors: no DOCTYPE (so no entity can
//! be defined or fetched), only predefined entities and character references, distinct
//! attribute names, declared prefixes, and size, depth and element count limits
//! ([`XmlLimits`]). Both give the same result (tested). A `multipart/mixed` PUBLISH body in
//! its plain form is likewise split without copying; other forms go through `mcptt-sip`.

mod mcptt_info;
mod poc_settings;
mod publish;
mod service_state;

pub use crate::xml::XmlLimits;
pub use mcptt_info::{MCPTT_INFO_NS, McpttInfo};
pub use poc_settings::{AnswerMode, POC_SETTINGS_NS, PocEntity, PocSettings};
pub use publish::PublishBody;
pub(crate) use publish::PublishParts;
pub(crate) use publish::simple_multipart_boundary;
pub(crate) use service_state::StateRef;
pub use service_state::{MAX_SERVICE_STATE_BYTES, ServiceState};

/// Content type of the mcptt-info body.
pub const MCPTT_INFO_CONTENT_TYPE: &str = "application/vnd.3gpp.mcptt-info+xml";
/// Content type of the poc-settings body.
pub const POC_SETTINGS_CONTENT_TYPE: &str = "application/poc-settings+xml";
/// Content type of the service-state body.
pub const SERVICE_STATE_CONTENT_TYPE: &str = "application/vnd.mcptt-service-state+json";

/// Applies `(position, operation, byte)` edits to a document (0: insert, 1: remove, else
/// overwrite; positions wrap around its length): the edited documents the template readers'
/// property tests feed to both readers.
#[cfg(test)]
pub(crate) fn apply_edits(doc: &mut Vec<u8>, edits: &[(usize, u8, u8)]) {
    for &(at, op, b) in edits {
        let at = at % (doc.len() + 1);
        match op {
            0 => doc.insert(at, b),
            1 if at < doc.len() => {
                doc.remove(at);
            }
            _ => {
                if let Some(slot) = doc.get_mut(at) {
                    *slot = b;
                }
            }
        }
    }
}

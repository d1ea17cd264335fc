//! The HTML login page: a plain form that works without JavaScript.

use mcptt_idm::authn::{Challenge, FieldKind};
use mcptt_idm::oauth::OAuthError;
use mcptt_idm::{AUTHORIZE_PATH, LoginPage};

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:28em;margin:3em auto}label{display:block;margin-top:1em}\
input[type=text],input[type=password]{width:100%;padding:.4em}button{margin-top:1.5em;padding:.5em 2em}\
.error{color:#a00}.small{font-size:small;color:#555;word-break:break-all}";

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    )
}

/// The login form for an authorization request; `message` is shown as an error, `challenge`
/// (SIM login) adds its parameters and answer fields.
pub fn login_page(
    page: &LoginPage,
    message: Option<&str>,
    challenge: Option<&Challenge>,
) -> String {
    let mut h = head("MCPTT sign-in");
    h.push_str("<h1>MCPTT sign-in</h1>");
    h.push_str(&format!(
        "<p class=\"small\">Client <b>{}</b> &middot; method <code id=\"acr\">{}</code></p>",
        escape(&page.request.client_id),
        escape(&page.acr)
    ));
    if let Some(m) = message {
        h.push_str(&format!(
            "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
            escape(m)
        ));
    }
    h.push_str(&format!(
        "<form method=\"post\" action=\"{AUTHORIZE_PATH}\" id=\"login\">"
    ));
    for (name, value) in page.request.to_params() {
        h.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(&value)
        ));
    }
    let username = page.username.as_deref().unwrap_or("");
    h.push_str(&format!(
        "<label for=\"username\">MCPTT ID</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" \
         autocomplete=\"username\" placeholder=\"sip:alice@example.com\" required>",
        escape(username)
    ));
    let fields = match challenge {
        Some(c) => {
            h.push_str(&format!(
                "<input type=\"hidden\" name=\"challenge_id\" value=\"{}\">",
                escape(&c.id)
            ));
            for (name, value) in &c.params {
                h.push_str(&format!(
                    "<p class=\"small\">{}: <code id=\"{}\">{}</code></p>",
                    escape(&name.to_uppercase()),
                    escape(name),
                    escape(value)
                ));
            }
            c.fields
        }
        None => page.fields,
    };
    for f in fields {
        let (kind, extra) = match f.kind {
            FieldKind::Password => ("password", " autocomplete=\"current-password\""),
            FieldKind::OneTimeCode => (
                "text",
                " inputmode=\"numeric\" autocomplete=\"one-time-code\"",
            ),
            _ => ("text", ""),
        };
        h.push_str(&format!(
            "<label for=\"{n}\">{l}</label><input type=\"{kind}\" id=\"{n}\" name=\"{n}\"{extra} required>",
            n = escape(f.name),
            l = escape(f.label)
        ));
    }
    let label = if challenge.is_none() && fields.is_empty() {
        "Request SIM challenge"
    } else {
        "Sign in"
    };
    h.push_str(&format!(
        "<button type=\"submit\" id=\"submit\">{label}</button></form></body></html>"
    ));
    h
}

/// A page for an authorization request that cannot be redirected back (RFC 6749 §4.1.2.1).
pub fn error_page(e: &OAuthError) -> String {
    let mut h = head("Sign-in error");
    h.push_str(&format!(
        "<h1>Sign-in error</h1><p class=\"error\" id=\"error\"><code>{}</code>: {}</p></body></html>",
        escape(e.code.as_str()),
        escape(e.description)
    ));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}

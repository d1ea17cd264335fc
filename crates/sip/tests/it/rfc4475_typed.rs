//! Typed checks of the RFC 4475 messages that parse: the values the RFC text calls out, and
//! for the semantic (S) messages the status the semantic layer owes, read through the API.

use mcptt_sip::{Message, Policy, Request, Scheme};

fn req<'a>(name: &str, m: &'a Message) -> &'a Request {
    match m {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{name}: expected a request"),
    }
}

pub(crate) fn check(name: &str, m: &Message) {
    match name {
        "wsinv" => {
            let r = req(name, m);
            assert_eq!(r.method().to_string(), "INVITE");
            assert_eq!(m.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
            let cseq = m.cseq().unwrap();
            assert_eq!(cseq.seq, 9);
            assert_eq!(cseq.method.to_string(), "INVITE");
            assert_eq!(m.max_forwards().unwrap(), Some(68));
            let to = m.to().unwrap();
            assert_eq!(to.uri().user(), Some("vivekg"));
            assert_eq!(to.tag(), Some("1918181833n"));
            let from = m.from().unwrap();
            assert_eq!(from.tag(), Some("98asjd8"));
            assert_eq!(from.display_name().as_deref(), Some("J Rosenberg \\\""));
            assert_eq!(from.display_name_raw(), Some("\"J Rosenberg \\\\\\\"\""));
            let vias = m.via().unwrap();
            assert_eq!(vias.len(), 3);
            assert_eq!(vias[0].transport(), "UDP");
            assert_eq!(vias[0].host(), "192.0.2.2");
            assert_eq!(vias[0].branch(), Some("390skdjuw"));
            assert_eq!(vias[1].transport(), "TCP");
            assert_eq!(vias[1].host(), "spindle.example.com");
            assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
            assert_eq!(vias[2].host(), "192.168.255.111");
            assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
            let contacts = m.contacts().unwrap();
            assert_eq!(contacts.len(), 1);
            assert_eq!(contacts[0].q_millis(), Some(330));
            assert_eq!(contacts[0].param("newparam"), Some("newvalue"));
            assert_eq!(contacts[0].param("secondparam"), Some(""));
            let display = contacts[0]
                .name_addr()
                .and_then(|a| a.display_name())
                .unwrap();
            assert_eq!(display, "Quoted string \"\"");
            let unk = m.headers().get("UnknownHeaderWithUnusualValue").unwrap();
            assert_eq!(unk, ";;,,;;,;");
            assert_eq!(m.body().len(), 150);
        }
        "esc02" => {
            let r = req(name, m);
            assert_eq!(r.method().to_string(), "RE%47IST%45R");
            assert_ne!(r.method().to_string(), "REGISTER");
            // `C%6Fntact` is an unknown header, not a Contact: two Contact values.
            assert_eq!(m.contacts().unwrap().len(), 2);
            assert!(m.headers().get("C%6Fntact").is_some());
            assert_eq!(m.to().unwrap().display_name().as_deref(), Some("%Z%45"));
        }
        "semiuri" => {
            let r = req(name, m);
            let uri = r.uri();
            assert_eq!(uri.user(), Some("user;par=u%40example.net"));
            assert_eq!(uri.host(), "example.com");
            assert_eq!(uri.params().count(), 0);
        }
        "esc01" => {
            let r = req(name, m);
            assert_eq!(r.uri().user(), Some("sips%3Auser%40example.com"));
            assert_eq!(
                r.uri().user_unescaped().as_deref(),
                Some("sips:user@example.com")
            );
            assert_eq!(
                m.to().unwrap().uri().user_unescaped().as_deref(),
                Some("user")
            );
        }
        "escnull" => {
            let contacts = m.contacts().unwrap();
            assert_eq!(contacts.len(), 2);
            assert_eq!(m.to().unwrap().uri().user(), Some("null-%00-null"));
        }
        "lwsdisp" => {
            assert_eq!(m.from().unwrap().display_name().as_deref(), Some("caller"));
            assert_eq!(m.from().unwrap().tag(), Some("323"));
        }
        "longreq" => {
            assert!(m.via().unwrap().len() >= 30, "many Via values");
            assert!(m.headers().get("Content-Type").is_some());
        }
        "dblreq" => {
            let r = req(name, m);
            assert_eq!(r.method().to_string(), "REGISTER");
            assert!(m.body().is_empty());
            assert_eq!(m.call_id(), Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412"));
        }
        "transports" => {
            let t: Vec<String> = m
                .via()
                .unwrap()
                .iter()
                .map(|v| v.transport().to_owned())
                .collect();
            assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
        }
        "mpart01" => {
            let ct = m.content_type().unwrap().unwrap();
            assert_eq!(ct.mime_type(), "multipart/mixed");
            assert_eq!(ct.boundary().as_deref(), Some("7a9cbec02ceef655"));
            let mp = mcptt_sip::body::Multipart::parse(&ct, m.body()).unwrap();
            assert_eq!(mp.parts.len(), 2);
            let bin = mp.parts[1].content_type().unwrap().unwrap();
            assert!(bin.is("application", "octet-stream"));
            assert_eq!(mp.encode(), m.body());
            assert_eq!(m.body().len(), 553);
        }
        "unreason" => {
            let Message::Response(r) = m else {
                panic!("{name}: response")
            };
            assert_eq!(r.status(), 200);
            assert!(r.reason().starts_with("= 2**3 * 5**2"));
        }
        "noreason" => {
            let Message::Response(r) = m else {
                panic!("{name}: response")
            };
            assert_eq!(r.status(), 100);
            assert_eq!(r.reason(), "");
        }
        "badbranch" => {
            let via = m.top_via().unwrap();
            assert_eq!(via.branch(), Some("z9hG4bK"));
        }
        "unkscm" | "novelsc" => {
            let r = req(name, m);
            assert_eq!(r.uri().scheme(), Scheme::Other);
            // A policy that accepts any scheme lets it through: 416 is only the scheme.
            let any = Policy {
                schemes: vec![Scheme::Sip, Scheme::Sips, Scheme::Tel, Scheme::Other],
                ..Policy::default()
            };
            r.check(&any).unwrap();
        }
        "unksm2" => {
            assert_eq!(m.to().unwrap().uri().scheme(), Scheme::Other);
            assert_eq!(m.from().unwrap().uri().scheme_str(), "http");
            assert_eq!(m.contacts().unwrap().len(), 1);
        }
        "bext01" => {
            let req_tags: Vec<String> = m.headers().values("Require").map(str::to_owned).collect();
            assert_eq!(
                req_tags,
                ["nothingSupportsThis", "nothingSupportsThisEither"]
            );
            let proxy: Vec<String> = m
                .headers()
                .values("Proxy-Require")
                .map(str::to_owned)
                .collect();
            assert_eq!(
                proxy,
                ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
            );
        }
        "invut" => {
            let ct = m.content_type().unwrap().unwrap();
            assert_eq!(ct.mime_type(), "application/unknownformat");
            // Without a content-type policy the check passes: 415 is only the body type.
            req(name, m).check(&Policy::default()).unwrap();
        }
        "regaut01" => {
            let auth = m.headers().get("Authorization").unwrap();
            assert!(auth.starts_with("NoOneKnowsThisScheme "));
        }
        "bcast" => {
            let vias = m.via().unwrap();
            assert_eq!(vias[1].host(), "255.255.255.255");
        }
        "zeromf" => {
            assert_eq!(m.max_forwards().unwrap(), Some(0));
            // A UAS answers it; only a proxy owes 483.
            req(name, m).check(&Policy::default()).unwrap();
        }
        "cparam01" => {
            let c = &m.contacts().unwrap()[0];
            let uri = c.uri().unwrap();
            assert!(
                !uri.has_param("unknownparam"),
                "header param, not URI param"
            );
            assert_eq!(c.param("unknownparam"), Some(""));
        }
        "cparam02" => {
            let c = &m.contacts().unwrap()[0];
            let uri = c.uri().unwrap();
            assert!(uri.has_param("unknownparam"), "URI param inside <>");
            assert_eq!(c.param("unknownparam"), None);
        }
        "regescrt" => {
            let c = &m.contacts().unwrap()[0];
            let uri = c.uri().unwrap();
            let h: Vec<(String, String)> = uri
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(
                h,
                [("Route".to_owned(), "%3Csip:sip.example.com%3E".to_owned())]
            );
            assert!(m.body().is_empty());
        }
        "sdp01" => {
            assert_eq!(m.headers().get("Accept"), Some("text/nobodyKnowsThis"));
            let ct = m.content_type().unwrap().unwrap();
            assert_eq!(ct.subtype(), "sdp");
        }
        "inv2543" => {
            let via = m.top_via().unwrap();
            assert_eq!(via.branch(), None);
        }
        _ => {}
    }
}

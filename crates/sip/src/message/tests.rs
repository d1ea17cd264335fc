use super::*;

#[test]
fn parses_request_line_and_headers() {
    let m = Message::parse(Bytes::from_static(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n")).unwrap();
    assert!(m.is_request());
    assert_eq!(m.headers().get("Content-Length"), Some("0"));
}

//! A minimal DER reader for the identity fields of an end-entity certificate that rustls has
//! already verified: subject alternative names (URI, DNS, IP), the first common name and
//! the end of validity.
//!
//! It walks the certificate's structure without decoding what the identity does not need
//! (key, signature, other extensions), where `x509-parser` decodes all of it: about a tenth
//! of the work per connection. It is strict: anything it does not read exactly as
//! `x509-parser` would (another string type, another extension, an unusual time, a
//! malformed or non-minimal encoding) makes it answer `None`, and the caller then parses
//! the certificate with `x509-parser` as before.

use std::net::IpAddr;

/// The identity fields of a certificate, borrowed from its DER.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub uris: Vec<&'a str>,
    pub dns_names: Vec<&'a str>,
    pub ip_addresses: Vec<IpAddr>,
    pub common_name: Option<&'a str>,
    pub not_after: i64,
}

/// One DER element: its tag, its content and what follows it. Single-byte tags and
/// minimal definite lengths of up to three bytes only.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if !(1..=3).contains(&n) {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes.iter().fold(0usize, |l, &b| (l << 8) | usize::from(b));
        // Minimal (DER): no leading zero byte, long form only from 128 on.
        if bytes.first() == Some(&0) || len < 0x80 {
            return None;
        }
        (len, rest.get(n..)?)
    };
    let content = rest.get(..len)?;
    Some((tag, content, rest.get(len..)?))
}

/// The next element, which must carry `tag`.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (t, content, rest) if t == tag => Some((content, rest)),
        _ => None,
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// Extensions whose content is not read here (rcgen and common CAs write them); any other
/// makes the reader give up, so `x509-parser` decides about it as before.
const OTHER_EXTENSIONS: [&[u8]; 5] = [
    &[0x55, 0x1d, 0x0f], // keyUsage
    &[0x55, 0x1d, 0x13], // basicConstraints
    &[0x55, 0x1d, 0x25], // extKeyUsage
    &[0x55, 0x1d, 0x0e], // subjectKeyIdentifier
    &[0x55, 0x1d, 0x23], // authorityKeyIdentifier
];

/// A directory string as `x509-parser`'s `AttributeTypeAndValue::as_str` reads it, for the
/// types whose characters this reader checks as its parser does; `None` otherwise.
fn directory_string(tag: u8, value: &[u8]) -> Option<&str> {
    let ok = match tag {
        // UTF8String
        0x0c => true,
        // NumericString
        0x12 => value.iter().all(|&b| b.is_ascii_digit() || b == b' '),
        // PrintableString
        0x13 => value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)),
        // IA5String
        0x16 => value.is_ascii(),
        _ => false,
    };
    if ok {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Walks a Name; returns its first common name, if any. `None` when an attribute value is
/// not a string this reader checks.
fn name(mut rdns: &[u8]) -> Option<Option<&str>> {
    let mut cn = None;
    while !rdns.is_empty() {
        let (mut set, rest) = expect(rdns, SET)?;
        rdns = rest;
        if set.is_empty() {
            return None;
        }
        while !set.is_empty() {
            let (attr, rest) = expect(set, SEQUENCE)?;
            set = rest;
            let (oid, value) = expect(attr, OID)?;
            let (tag, value, end) = tlv(value)?;
            if !end.is_empty() {
                return None;
            }
            let text = directory_string(tag, value)?;
            if oid == OID_COMMON_NAME && cn.is_none() {
                cn = Some(text);
            }
        }
    }
    Some(cn)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as seconds since the
/// Unix epoch; `None` for any other form (fractions, offsets, out-of-range fields).
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    let (year, rest) = match (tag, value.len()) {
        (0x17, 13) => {
            let yy = digits(value.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, value.get(2..)?)
        }
        (0x18, 15) => (digits(value.get(..4)?)?, value.get(4..)?),
        _ => return None,
    };
    if rest.get(10) != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| rest.get(i..i + 2).and_then(digits);
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn digits(s: &[u8]) -> Option<i64> {
    s.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// The SubjectAltName extension's value (a GeneralNames SEQUENCE) into `fields`.
fn subject_alt_names<'a>(value: &'a [u8], fields: &mut Fields<'a>) -> Option<()> {
    let (mut names, end) = expect(value, SEQUENCE)?;
    if !end.is_empty() {
        return None;
    }
    while !names.is_empty() {
        let (tag, content, rest) = tlv(names)?;
        names = rest;
        match tag {
            // dNSName, uniformResourceIdentifier (IA5String)
            0x82 | 0x86 if content.is_ascii() => {
                let text = std::str::from_utf8(content).ok()?;
                if tag == 0x82 {
                    fields.dns_names.push(text);
                } else {
                    fields.uris.push(text);
                }
            }
            // iPAddress: kept when it is 4 or 16 bytes, as before.
            0x87 => {
                if let Ok(v4) = <[u8; 4]>::try_from(content) {
                    fields.ip_addresses.push(IpAddr::from(v4));
                } else if let Ok(v6) = <[u8; 16]>::try_from(content) {
                    fields.ip_addresses.push(IpAddr::from(v6));
                }
            }
            _ => return None,
        }
    }
    Some(())
}

/// The identity fields of a DER certificate (X.509 v3), or `None` when this reader does not
/// read it exactly as `x509-parser` would (see the module documentation).
pub(crate) fn identity_fields(der: &[u8]) -> Option<Fields<'_>> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, rest) = expect(cert, SEQUENCE)?;
    let (_, rest) = expect(rest, SEQUENCE)?; // signatureAlgorithm
    let (_, rest) = expect(rest, 0x03)?; // signatureValue
    if !rest.is_empty() {
        return None;
    }
    // version [0] EXPLICIT INTEGER: v3 (2) only.
    let (version, tbs) = expect(tbs, 0xa0)?;
    if version != [0x02, 0x01, 0x02] {
        return None;
    }
    let (_, tbs) = expect(tbs, 0x02)?; // serialNumber
    let (_, tbs) = expect(tbs, SEQUENCE)?; // signature
    let (issuer, tbs) = expect(tbs, SEQUENCE)?;
    name(issuer)?;
    let (validity, tbs) = expect(tbs, SEQUENCE)?;
    let (tag, not_before, validity) = tlv(validity)?;
    time(tag, not_before)?;
    let (tag, not_after, validity) = tlv(validity)?;
    let not_after = time(tag, not_after)?;
    if !validity.is_empty() {
        return None;
    }
    let (subject, tbs) = expect(tbs, SEQUENCE)?;
    let common_name = name(subject)?;
    let (_, tbs) = expect(tbs, SEQUENCE)?; // subjectPublicKeyInfo
    let mut fields = Fields {
        common_name,
        not_after,
        ..Fields::default()
    };
    if tbs.is_empty() {
        return Some(fields);
    }
    // No issuer/subject unique IDs: the extensions, and nothing after them.
    let (extensions, end) = expect(tbs, 0xa3)?;
    if !end.is_empty() {
        return None;
    }
    let (mut list, end) = expect(extensions, SEQUENCE)?;
    if !end.is_empty() || list.is_empty() {
        return None;
    }
    let mut seen: Vec<&[u8]> = Vec::new();
    while !list.is_empty() {
        let (ext, rest) = expect(list, SEQUENCE)?;
        list = rest;
        let (oid, ext) = expect(ext, OID)?;
        if seen.contains(&oid) {
            return None;
        }
        seen.push(oid);
        let ext = match tlv(ext)? {
            // critical BOOLEAN (DER: TRUE only, as FALSE is the default)
            (0x01, [0xff], rest) => rest,
            (0x01, _, _) => return None,
            _ => ext,
        };
        let (value, end) = expect(ext, 0x04)?;
        if !end.is_empty() {
            return None;
        }
        if oid == OID_SUBJECT_ALT_NAME {
            subject_alt_names(value, &mut fields)?;
        } else if !OTHER_EXTENSIONS.contains(&oid) {
            return None;
        }
    }
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_unix_seconds() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20000229120000Z"), Some(951_825_600));
        assert_eq!(time(0x18, b"19000228000000Z"), Some(-2_203_977_600));
        assert_eq!(time(0x18, b"19000229000000Z"), None, "1900 is not leap");
        assert_eq!(time(0x17, b"700101000060Z"), None);
        assert_eq!(time(0x17, b"7001010000Z"), None);
        assert_eq!(time(0x18, b"20000101000000.5Z"), None);
    }

    #[test]
    fn lengths_must_be_minimal() {
        assert!(tlv(&[0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).is_none());
        assert!(tlv(&[0x04, 0x82, 0x00, 0x80]).is_none());
        assert!(tlv(&[0x04, 0x80]).is_none());
        assert!(tlv(&[0x04, 0x02, 1]).is_none());
        let long = [&[0x04, 0x81, 0x80][..], &[7; 128]].concat();
        assert_eq!(
            tlv(&long).map(|(t, c, r)| (t, c.len(), r.len())),
            Some((4, 128, 0))
        );
    }
}

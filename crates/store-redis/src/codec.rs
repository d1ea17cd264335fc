//! The stored form of an [`AorRecord`]: a compact, length-prefixed binary encoding.
//!
//! ```text
//! record  = format(u8 = 2) count(u32) binding*count
//! binding = request(bytes) id(u64) uri(sref) contact(sref) instance(opt sref)
//!           reg_id(opt u32) call_id(sref) cseq(u32) registered_at(i64 Unix ms, floor)
//!           expires_at(i64 Unix ms, ceil) third_party(u16 n, u16*n)
//! sref    = 0 str | 1 offset(u32) len(u32): the text at that place of the binding's own
//!           request (the contact, URI, instance and Call-ID normally are there: each is
//!           stored once)
//! str     = len(u32) UTF-8 bytes;  bytes = len(u32) bytes;  opt x = 0 | 1 x
//! ```
//!
//! Format 1 (strings inline, the request after `expires_at`) is still decoded.
//! Integers are big-endian. Decoding never panics and never allocates more than the
//! input's length.

use bytes::Bytes;
use mcptt_registration::{AorRecord, Binding};

use crate::time::TimeBase;

const FORMAT: u8 = 2;
/// The first format: every string inline, the request after the expiry.
const FORMAT_INLINE: u8 = 1;

/// Encodes `record` with times translated through `tb`.
pub(crate) fn encode(record: &AorRecord, tb: &TimeBase) -> Vec<u8> {
    let size: usize = record
        .bindings
        .iter()
        .map(|b| {
            64 + b.uri.len()
                + b.contact.len()
                + b.instance.as_ref().map_or(0, String::len)
                + b.call_id.len()
                + b.request.len()
                + 2 * b.third_party.len()
        })
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(FORMAT);
    put_len(&mut out, record.bindings.len());
    for b in &record.bindings {
        put_bytes(&mut out, &b.request);
        out.extend_from_slice(&b.id.to_be_bytes());
        put_sref(&mut out, &b.request, &b.uri);
        put_sref(&mut out, &b.request, &b.contact);
        match &b.instance {
            Some(i) => {
                out.push(1);
                put_sref(&mut out, &b.request, i);
            }
            None => out.push(0),
        }
        match b.reg_id {
            Some(r) => {
                out.push(1);
                out.extend_from_slice(&r.to_be_bytes());
            }
            None => out.push(0),
        }
        put_sref(&mut out, &b.request, &b.call_id);
        out.extend_from_slice(&b.cseq.to_be_bytes());
        out.extend_from_slice(&tb.to_unix_ms_floor(b.registered_at).to_be_bytes());
        out.extend_from_slice(&tb.to_unix_ms_ceil(b.expires_at).to_be_bytes());
        // More than u16::MAX filters cannot be configured meaningfully; cap the count.
        let n = b.third_party.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        for f in b.third_party.iter().take(n) {
            out.extend_from_slice(&f.to_be_bytes());
        }
    }
    out
}

/// `s` as a reference into `request` when it occurs there (and the reference is shorter),
/// else inline.
fn put_sref(out: &mut Vec<u8>, request: &[u8], s: &str) {
    if s.len() > 8
        && let Some(at) = memchr::memmem::find(request, s.as_bytes())
        && let (Ok(at), Ok(len)) = (u32::try_from(at), u32::try_from(s.len()))
    {
        out.push(1);
        out.extend_from_slice(&at.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        return;
    }
    out.push(0);
    put_bytes(out, s.as_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.buf.len() < n {
            return Err("truncated");
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        self.take(N)?.try_into().map_err(|_| "truncated")
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let n = usize::try_from(self.u32()?).map_err(|_| "length out of range")?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, &'static str> {
        std::str::from_utf8(self.bytes()?)
            .map(str::to_owned)
            .map_err(|_| "invalid UTF-8")
    }
    /// A `sref`: inline, or a slice of `request`.
    fn sref(&mut self, request: &[u8]) -> Result<String, &'static str> {
        if !self.flag()? {
            return self.string();
        }
        let at = usize::try_from(self.u32()?).map_err(|_| "offset out of range")?;
        let len = usize::try_from(self.u32()?).map_err(|_| "length out of range")?;
        let end = at.checked_add(len).ok_or("reference out of range")?;
        let text = request.get(at..end).ok_or("reference out of range")?;
        std::str::from_utf8(text)
            .map(str::to_owned)
            .map_err(|_| "invalid UTF-8")
    }
    fn flag(&mut self) -> Result<bool, &'static str> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("invalid option flag"),
        }
    }
}

/// Decodes a stored record with times translated through `tb`.
pub(crate) fn decode(data: &[u8], tb: &TimeBase) -> Result<AorRecord, &'static str> {
    let mut r = Reader { buf: data };
    let inline = match r.u8()? {
        FORMAT => false,
        FORMAT_INLINE => true,
        _ => return Err("unknown record format"),
    };
    let count = usize::try_from(r.u32()?).map_err(|_| "length out of range")?;
    // Each binding takes at least 40 bytes: do not trust `count` for the allocation.
    let mut bindings = Vec::with_capacity(count.min(data.len() / 40));
    for _ in 0..count {
        let (request, id, uri, contact, instance);
        if inline {
            request = Bytes::new();
            id = r.u64()?;
            uri = r.string()?;
            contact = r.string()?;
            instance = if r.flag()? { Some(r.string()?) } else { None };
        } else {
            request = Bytes::copy_from_slice(r.bytes()?);
            id = r.u64()?;
            uri = r.sref(&request)?;
            contact = r.sref(&request)?;
            instance = if r.flag()? {
                Some(r.sref(&request)?)
            } else {
                None
            };
        }
        let reg_id = if r.flag()? { Some(r.u32()?) } else { None };
        let call_id = if inline {
            r.string()?
        } else {
            r.sref(&request)?
        };
        let cseq = r.u32()?;
        let registered_at = tb.from_unix_ms(r.i64()?);
        let expires_at = tb.from_unix_ms(r.i64()?);
        let request = if inline {
            Bytes::copy_from_slice(r.bytes()?)
        } else {
            request
        };
        let n = usize::from(r.u16()?);
        let mut third_party = Vec::with_capacity(n.min(r.buf.len() / 2));
        for _ in 0..n {
            third_party.push(r.u16()?);
        }
        bindings.push(Binding {
            id,
            uri,
            contact,
            instance,
            reg_id,
            call_id,
            cseq,
            registered_at,
            expires_at,
            request,
            third_party,
        });
    }
    if !r.buf.is_empty() {
        return Err("trailing bytes");
    }
    Ok(AorRecord { bindings })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn round_trip_and_every_truncation_fails_cleanly() {
        let t0 = Instant::now();
        let tb = TimeBase::new(t0, Duration::from_secs(1_700_000_000));
        let b = Binding {
            id: 42,
            uri: "sip:alice@192.0.2.1:5061;transport=tls".into(),
            contact: "<sip:alice@192.0.2.1:5061;transport=tls>;+g.3gpp.mcptt".into(),
            instance: Some("<urn:uuid:00000000-0000-1000-8000-000000000001>".into()),
            reg_id: Some(1),
            call_id: "call-1".into(),
            cseq: 7,
            registered_at: t0,
            expires_at: t0 + Duration::from_secs(600),
            request: Bytes::from_static(b"REGISTER sip:example.com SIP/2.0\r\n\r\n"),
            third_party: vec![0, 3],
        };
        let plain = Binding {
            instance: None,
            reg_id: None,
            third_party: vec![],
            ..b.clone()
        };
        let rec = AorRecord {
            bindings: vec![b, plain],
        };
        let data = encode(&rec, &tb);
        assert_eq!(decode(&data, &tb).unwrap(), rec);
        for cut in 0..data.len() {
            assert!(decode(&data[..cut], &tb).is_err(), "prefix of {cut} bytes");
        }
        let mut extra = data.clone();
        extra.push(0);
        assert_eq!(decode(&extra, &tb), Err("trailing bytes"));
        let mut huge = data;
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge, &tb).is_err());
    }

    /// The first format, as it was written (strings inline, request last).
    fn encode_v1(record: &AorRecord, tb: &TimeBase) -> Vec<u8> {
        let mut out = vec![FORMAT_INLINE];
        put_len(&mut out, record.bindings.len());
        for b in &record.bindings {
            out.extend_from_slice(&b.id.to_be_bytes());
            put_bytes(&mut out, b.uri.as_bytes());
            put_bytes(&mut out, b.contact.as_bytes());
            match &b.instance {
                Some(i) => {
                    out.push(1);
                    put_bytes(&mut out, i.as_bytes());
                }
                None => out.push(0),
            }
            match b.reg_id {
                Some(r) => {
                    out.push(1);
                    out.extend_from_slice(&r.to_be_bytes());
                }
                None => out.push(0),
            }
            put_bytes(&mut out, b.call_id.as_bytes());
            out.extend_from_slice(&b.cseq.to_be_bytes());
            out.extend_from_slice(&tb.to_unix_ms_floor(b.registered_at).to_be_bytes());
            out.extend_from_slice(&tb.to_unix_ms_ceil(b.expires_at).to_be_bytes());
            put_bytes(&mut out, &b.request);
            out.extend_from_slice(&u16::try_from(b.third_party.len()).unwrap().to_be_bytes());
            for f in &b.third_party {
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
        out
    }

    #[test]
    fn strings_found_in_the_request_are_stored_once_and_format_1_still_reads() {
        let t0 = Instant::now();
        let tb = TimeBase::new(t0, Duration::from_secs(1_700_000_000));
        let contact = "<sip:alice@192.0.2.1:5061;transport=tls>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\";+g.3gpp.mcptt";
        let request = format!(
            "REGISTER sip:example.com SIP/2.0\r\nCall-ID: a84b4c76e66710@192.0.2.1\r\n\
             Contact: {contact}\r\nContent-Length: 0\r\n\r\n"
        );
        let b = Binding {
            id: 42,
            uri: "sip:alice@192.0.2.1:5061;transport=tls".into(),
            contact: contact.into(),
            instance: Some("<urn:uuid:00000000-0000-1000-8000-000000000001>".into()),
            reg_id: None,
            call_id: "a84b4c76e66710@192.0.2.1".into(),
            cseq: 7,
            registered_at: t0,
            expires_at: t0 + Duration::from_secs(600),
            request: Bytes::from(request),
            third_party: vec![0],
        };
        let rec = AorRecord {
            bindings: vec![b.clone()],
        };
        let data = encode(&rec, &tb);
        assert_eq!(decode(&data, &tb).unwrap(), rec);
        let copies = |needle: &[u8]| data.windows(needle.len()).filter(|w| *w == needle).count();
        assert_eq!(copies(b"urn:uuid:00000000-0000-1000-8000-000000000001"), 1);
        assert_eq!(copies(b"a84b4c76e66710@192.0.2.1"), 1);
        assert!(data.len() < b.request.len() + 80, "{} bytes", data.len());
        for cut in 0..data.len() {
            assert!(decode(&data[..cut], &tb).is_err(), "prefix of {cut} bytes");
        }
        // Records written in the first format still decode to the same bindings.
        assert_eq!(decode(&encode_v1(&rec, &tb), &tb).unwrap(), rec);
        // A reference past the request's end is refused: first sref after request and id.
        let mut bad = data.clone();
        let sref_at = 1 + 4 + 4 + b.request.len() + 8;
        assert_eq!(bad[sref_at], 1);
        bad[sref_at + 1..sref_at + 5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&bad, &tb), Err("reference out of range"));
    }
}

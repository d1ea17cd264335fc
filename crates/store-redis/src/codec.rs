//! The stored form of an [`AorRecord`]: a compact, length-prefixed binary encoding.
//!
//! ```text
//! record  = format(u8 = 1) count(u32) binding*count
//! binding = id(u64) uri(str) contact(str) instance(opt str) reg_id(opt u32)
//!           call_id(str) cseq(u32) registered_at(i64 Unix ms, floor)
//!           expires_at(i64 Unix ms, ceil) request(bytes) third_party(u16 n, u16*n)
//! str     = len(u32) UTF-8 bytes;  bytes = len(u32) bytes;  opt x = 0 | 1 x
//! ```
//! Integers are big-endian. Decoding never panics and never allocates more than the
//! input's length.

use bytes::Bytes;
use mcptt_registration::{AorRecord, Binding};

use crate::time::TimeBase;

const FORMAT: u8 = 1;

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
        // More than u16::MAX filters cannot be configured meaningfully; cap the count.
        let n = b.third_party.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        for f in b.third_party.iter().take(n) {
            out.extend_from_slice(&f.to_be_bytes());
        }
    }
    out
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
    if r.u8()? != FORMAT {
        return Err("unknown record format");
    }
    let count = usize::try_from(r.u32()?).map_err(|_| "length out of range")?;
    // Each binding takes at least 40 bytes: do not trust `count` for the allocation.
    let mut bindings = Vec::with_capacity(count.min(data.len() / 40));
    for _ in 0..count {
        let id = r.u64()?;
        let uri = r.string()?;
        let contact = r.string()?;
        let instance = if r.flag()? { Some(r.string()?) } else { None };
        let reg_id = if r.flag()? { Some(r.u32()?) } else { None };
        let call_id = r.string()?;
        let cseq = r.u32()?;
        let registered_at = tb.from_unix_ms(r.i64()?);
        let expires_at = tb.from_unix_ms(r.i64()?);
        let request = Bytes::copy_from_slice(r.bytes()?);
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
}

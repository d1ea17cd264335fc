//! The stored form of the service-state records ([`UeRecord`], [`DialogRecord`]): a compact,
//! length-prefixed binary encoding with variable-length integers.
//!
//! ```text
//! ue      = format(u8 = 1) last_version(uv) kind(u8: 0 personal, 1 shareable, 2 gateway)
//!           instances(uv n, str*n) users(uv n, user*n)
//! user    = mcptt_id(str) version(uv) auth
//! auth    = 0 (unauthorised) | 3 (signed off) | 4 (replaced)
//!         | 1 etag(u64) pub_expires(ms) token_deadline(ms) token_exp(uv)    (authorised)
//!         | 2 etag(u64) pub_expires(ms) token_exp(uv)                       (expired)
//! dialog  = format(u8 = 1) impu(str) mcptt_id(str) call_id(str) their_tag(str)
//!           local_uri(str) remote_uri(str) remote_target(str) route_set(uv n, str*n)
//!           local_cseq(uv) remote_cseq(uv) event_id(0 | 1 str) expires_at(ms)
//!           holder(u64) lease_expires(ms) notified_version(uv)
//! uv      = unsigned LEB128 (at most 10 bytes)
//! str     = uv (2 * length), UTF-8 bytes
//!         | uv (2 * k + 1): the same text as the record's k-th string (0-based), e.g. a
//!           dialog's remote URI that is the UE's identity
//! u64     = 8 bytes big-endian (random 64-bit values: a varint would only grow them)
//! ms      = Unix milliseconds as uv, rounded up (never early)
//! ```
//!
//! Times cross the boundary through [`TimeBase`]: every deadline is stored rounded **up** to
//! the millisecond, so a record read back never expires earlier than written and at most
//! 1 ms later. Decoding never panics and never allocates more than the input's length.

use std::sync::Arc;
use std::time::Instant;

use mcptt_service_state::UeKind;
use mcptt_service_state::store::{
    AuthRecord, DialogRecord, PublicationRecord, UeRecord, UserRecord,
};

use crate::time::TimeBase;

const FORMAT: u8 = 1;

/// Why a record could not be encoded.
pub(crate) const UNKNOWN_VARIANT: &str = "record variant unknown to this store version";

fn put_uv(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // Truncation intended: the low seven bits plus the continuation bit.
        #[allow(clippy::cast_possible_truncation)]
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(v as u8);
}

/// Writes strings, each text once per record (repeats as back-references).
struct Writer<'a> {
    out: Vec<u8>,
    seen: Vec<&'a str>,
}

impl<'a> Writer<'a> {
    fn str(&mut self, s: &'a str) {
        if let Some(k) = self.seen.iter().position(|x| *x == s) {
            put_uv(&mut self.out, 2 * k as u64 + 1);
            return;
        }
        put_uv(&mut self.out, 2 * s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
        self.seen.push(s);
    }
}

fn put_time(out: &mut Vec<u8>, tb: &TimeBase, t: Instant) {
    // Times before 1970 cannot come from a sane clock: stored as the epoch.
    put_uv(out, u64::try_from(tb.to_unix_ms_ceil(t)).unwrap_or(0));
}

fn kind_code(kind: UeKind) -> Option<u8> {
    match kind {
        UeKind::Personal => Some(0),
        UeKind::Shareable => Some(1),
        UeKind::Gateway => Some(2),
        #[allow(unreachable_patterns)] // `UeKind` may grow variants
        _ => None,
    }
}

/// Encodes a UE record with times translated through `tb`.
pub(crate) fn encode_ue(record: &UeRecord, tb: &TimeBase) -> Result<Vec<u8>, &'static str> {
    let size = 16
        + record.instances.iter().map(|i| i.len() + 2).sum::<usize>()
        + record
            .users
            .iter()
            .map(|u| u.mcptt_id.len() + 40)
            .sum::<usize>();
    let mut w = Writer {
        out: Vec::with_capacity(size),
        seen: Vec::new(),
    };
    w.out.push(FORMAT);
    put_uv(&mut w.out, record.last_version);
    w.out.push(kind_code(record.kind).ok_or(UNKNOWN_VARIANT)?);
    put_uv(&mut w.out, record.instances.len() as u64);
    for i in record.instances.iter() {
        w.str(i);
    }
    put_uv(&mut w.out, record.users.len() as u64);
    for u in &record.users {
        w.str(&u.mcptt_id);
        let out = &mut w.out;
        put_uv(out, u.version);
        match &u.auth {
            AuthRecord::Unauthorised => out.push(0),
            AuthRecord::Authorised {
                publication,
                token_deadline,
                token_exp,
            } => {
                out.push(1);
                out.extend_from_slice(&publication.etag.to_be_bytes());
                put_time(out, tb, publication.expires_at);
                put_time(out, tb, *token_deadline);
                put_uv(out, *token_exp);
            }
            AuthRecord::Expired {
                publication,
                token_exp,
            } => {
                out.push(2);
                out.extend_from_slice(&publication.etag.to_be_bytes());
                put_time(out, tb, publication.expires_at);
                put_uv(out, *token_exp);
            }
            AuthRecord::SignedOff => out.push(3),
            AuthRecord::Replaced => out.push(4),
            _ => return Err(UNKNOWN_VARIANT),
        }
    }
    Ok(w.out)
}

/// Encodes a dialog record with times translated through `tb`.
pub(crate) fn encode_dialog(d: &DialogRecord, tb: &TimeBase) -> Vec<u8> {
    let strings = d.impu.len()
        + d.mcptt_id.len()
        + d.call_id.len()
        + d.their_tag.len()
        + d.local_uri.len()
        + d.remote_uri.len()
        + d.remote_target.len()
        + d.route_set.iter().map(|r| r.len() + 2).sum::<usize>()
        + d.event_id.as_ref().map_or(0, |e| e.len());
    let mut w = Writer {
        out: Vec::with_capacity(64 + strings),
        seen: Vec::with_capacity(8),
    };
    w.out.push(FORMAT);
    for s in [
        &d.impu,
        &d.mcptt_id,
        &d.call_id,
        &d.their_tag,
        &d.local_uri,
        &d.remote_uri,
        &d.remote_target,
    ] {
        w.str(s);
    }
    put_uv(&mut w.out, d.route_set.len() as u64);
    for r in d.route_set.iter() {
        w.str(r);
    }
    put_uv(&mut w.out, u64::from(d.local_cseq));
    put_uv(&mut w.out, u64::from(d.remote_cseq));
    match &d.event_id {
        Some(e) => {
            w.out.push(1);
            w.str(e);
        }
        None => w.out.push(0),
    }
    let out = &mut w.out;
    put_time(out, tb, d.expires_at);
    out.extend_from_slice(&d.holder.to_be_bytes());
    put_time(out, tb, d.lease_expires);
    put_uv(out, d.notified_version);
    w.out
}

struct Reader<'a> {
    buf: &'a [u8],
    /// The strings read so far (targets of back-references).
    seen: Vec<&'a str>,
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

    fn u8(&mut self) -> Result<u8, &'static str> {
        let [b] = self.take(1)? else {
            return Err("truncated");
        };
        Ok(*b)
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| "truncated")?;
        Ok(u64::from_be_bytes(b))
    }

    fn uv(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("integer out of range");
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("integer out of range")
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.uv()?).map_err(|_| "integer out of range")
    }

    fn len(&mut self) -> Result<usize, &'static str> {
        let n = usize::try_from(self.uv()?).map_err(|_| "length out of range")?;
        if n > self.buf.len() {
            return Err("truncated");
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<&'a str, &'static str> {
        let v = self.uv()?;
        if v & 1 == 1 {
            let k = usize::try_from(v >> 1).map_err(|_| "reference out of range")?;
            return self.seen.get(k).copied().ok_or("reference out of range");
        }
        let n = usize::try_from(v >> 1).map_err(|_| "length out of range")?;
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| "invalid UTF-8")?;
        self.seen.push(s);
        Ok(s)
    }

    fn arc(&mut self) -> Result<Arc<str>, &'static str> {
        self.str().map(Arc::from)
    }

    fn time(&mut self, tb: &TimeBase) -> Result<Instant, &'static str> {
        let ms = i64::try_from(self.uv()?).map_err(|_| "time out of range")?;
        Ok(tb.from_unix_ms(ms))
    }

    fn end(&self) -> Result<(), &'static str> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes")
        }
    }
}

/// Decodes a stored UE record with times translated through `tb`.
pub(crate) fn decode_ue(data: &[u8], tb: &TimeBase) -> Result<UeRecord, &'static str> {
    let mut r = Reader {
        buf: data,
        seen: Vec::new(),
    };
    if r.u8()? != FORMAT {
        return Err("unknown record format");
    }
    let last_version = r.uv()?;
    let kind = match r.u8()? {
        0 => UeKind::Personal,
        1 => UeKind::Shareable,
        2 => UeKind::Gateway,
        _ => return Err("unknown UE kind"),
    };
    // Every entry takes at least one byte: `len` bounds the count by the input.
    let n = r.len()?;
    let mut instances = Vec::with_capacity(n);
    for _ in 0..n {
        instances.push(r.arc()?);
    }
    let n = r.len()?;
    let mut users = Vec::with_capacity(n);
    for _ in 0..n {
        let mcptt_id = r.arc()?;
        let version = r.uv()?;
        let auth = match r.u8()? {
            0 => AuthRecord::Unauthorised,
            1 => {
                let etag = r.u64()?;
                let expires_at = r.time(tb)?;
                AuthRecord::Authorised {
                    publication: PublicationRecord { etag, expires_at },
                    token_deadline: r.time(tb)?,
                    token_exp: r.uv()?,
                }
            }
            2 => {
                let etag = r.u64()?;
                let expires_at = r.time(tb)?;
                AuthRecord::Expired {
                    publication: PublicationRecord { etag, expires_at },
                    token_exp: r.uv()?,
                }
            }
            3 => AuthRecord::SignedOff,
            4 => AuthRecord::Replaced,
            _ => return Err("unknown authorisation state"),
        };
        users.push(UserRecord {
            mcptt_id,
            auth,
            version,
        });
    }
    r.end()?;
    Ok(UeRecord {
        last_version,
        kind,
        instances: instances.into(),
        users,
    })
}

/// Decodes a stored dialog record with times translated through `tb`.
pub(crate) fn decode_dialog(data: &[u8], tb: &TimeBase) -> Result<DialogRecord, &'static str> {
    let mut r = Reader {
        buf: data,
        seen: Vec::new(),
    };
    if r.u8()? != FORMAT {
        return Err("unknown record format");
    }
    let impu = r.arc()?;
    let mcptt_id = r.arc()?;
    let call_id = r.arc()?;
    let their_tag = r.arc()?;
    let local_uri = r.arc()?;
    let remote_uri = r.arc()?;
    let remote_target = r.arc()?;
    let n = r.len()?;
    let mut route_set = Vec::with_capacity(n);
    for _ in 0..n {
        route_set.push(r.str()?.to_owned());
    }
    let local_cseq = r.u32()?;
    let remote_cseq = r.u32()?;
    let event_id = match r.u8()? {
        0 => None,
        1 => Some(r.arc()?),
        _ => return Err("invalid option flag"),
    };
    let expires_at = r.time(tb)?;
    let holder = r.u64()?;
    let lease_expires = r.time(tb)?;
    let notified_version = r.uv()?;
    r.end()?;
    Ok(DialogRecord {
        impu,
        mcptt_id,
        call_id,
        their_tag,
        local_uri,
        remote_uri,
        remote_target,
        route_set: route_set.into(),
        local_cseq,
        remote_cseq,
        event_id,
        expires_at,
        holder,
        lease_expires,
        notified_version,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tb() -> (Instant, TimeBase) {
        let t0 = Instant::now();
        (
            t0,
            TimeBase::new(t0, Duration::from_millis(1_700_000_000_000)),
        )
    }

    fn ue(t0: Instant) -> UeRecord {
        let publication = PublicationRecord {
            etag: 0xdead_beef_0123_4567,
            expires_at: t0 + Duration::from_secs(3600),
        };
        UeRecord {
            last_version: 300,
            kind: UeKind::Shareable,
            instances: Arc::from([Arc::from("<urn:uuid:1>"), Arc::from("")]),
            users: vec![
                UserRecord {
                    mcptt_id: "sip:alice@mcptt.example.org".into(),
                    auth: AuthRecord::Authorised {
                        publication,
                        token_deadline: t0 + Duration::from_secs(1800),
                        token_exp: 1_700_001_800,
                    },
                    version: 299,
                },
                UserRecord {
                    mcptt_id: "sip:bob@mcptt.example.org".into(),
                    auth: AuthRecord::Expired {
                        publication,
                        token_exp: 5,
                    },
                    version: 3,
                },
                UserRecord {
                    mcptt_id: "sip:carol@x".into(),
                    auth: AuthRecord::SignedOff,
                    version: 1,
                },
                UserRecord {
                    mcptt_id: "sip:dan@x".into(),
                    auth: AuthRecord::Replaced,
                    version: 2,
                },
                UserRecord {
                    mcptt_id: "sip:eve@x".into(),
                    auth: AuthRecord::Unauthorised,
                    version: u64::MAX,
                },
            ],
        }
    }

    fn dialog(t0: Instant) -> DialogRecord {
        DialogRecord {
            impu: "sip:ue1@example.org".into(),
            mcptt_id: "sip:alice@mcptt.example.org".into(),
            call_id: "a84b4c76e66710".into(),
            their_tag: "1928301774".into(),
            local_uri: "sip:mcptt-server@mcptt.example.org".into(),
            remote_uri: "sip:ue1@example.org".into(),
            remote_target: "sip:ue1@192.0.2.1:5061;transport=tls".into(),
            route_set: vec!["<sip:core.example.org;lr>".to_owned()].into(),
            local_cseq: u32::MAX,
            remote_cseq: 2,
            event_id: Some("7".into()),
            expires_at: t0 + Duration::from_secs(600),
            holder: u64::MAX,
            lease_expires: t0 + Duration::from_secs(60),
            notified_version: 12,
        }
    }

    #[test]
    fn round_trips_on_millisecond_times() {
        let (t0, tb) = tb();
        let rec = ue(t0);
        let data = encode_ue(&rec, &tb).unwrap();
        assert_eq!(decode_ue(&data, &tb).unwrap(), rec);
        let d = dialog(t0);
        let data = encode_dialog(&d, &tb);
        assert_eq!(decode_dialog(&data, &tb).unwrap(), d);
        // The remote URI (the UE's identity again) is stored once, as a back-reference.
        let impu = d.impu.as_bytes();
        let copies = data.windows(impu.len()).filter(|w| *w == impu).count();
        assert_eq!(copies, 1);
        // A reference to a string not read yet is refused.
        assert_eq!(decode_dialog(&[1, 3], &tb), Err("reference out of range"));
        let plain = DialogRecord {
            event_id: None,
            route_set: Vec::new().into(),
            ..d
        };
        assert_eq!(
            decode_dialog(&encode_dialog(&plain, &tb), &tb).unwrap(),
            plain
        );
        let empty = UeRecord::default();
        assert_eq!(
            decode_ue(&encode_ue(&empty, &tb).unwrap(), &tb).unwrap(),
            empty
        );
    }

    #[test]
    fn times_round_up_never_early_and_at_most_a_millisecond_late() {
        let (t0, tb) = tb();
        let mut d = dialog(t0);
        d.lease_expires = t0 + Duration::from_micros(60_000_001);
        d.expires_at = t0 + Duration::from_micros(999);
        let back = decode_dialog(&encode_dialog(&d, &tb), &tb).unwrap();
        for (stored, written) in [
            (back.lease_expires, d.lease_expires),
            (back.expires_at, d.expires_at),
        ] {
            assert!(stored >= written);
            assert!(stored - written < Duration::from_millis(1));
        }
    }

    #[test]
    fn every_truncation_and_corruption_fails_cleanly() {
        let (t0, tb) = tb();
        let u = encode_ue(&ue(t0), &tb).unwrap();
        let d = encode_dialog(&dialog(t0), &tb);
        for cut in 0..u.len() {
            assert!(
                decode_ue(&u[..cut], &tb).is_err(),
                "UE prefix of {cut} bytes"
            );
        }
        for cut in 0..d.len() {
            assert!(
                decode_dialog(&d[..cut], &tb).is_err(),
                "dialog prefix {cut}"
            );
        }
        let mut extra = u;
        extra.push(0);
        assert_eq!(decode_ue(&extra, &tb), Err("trailing bytes"));
        // A huge count or an overlong varint is refused before allocating.
        assert!(decode_ue(&[1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f], &tb).is_err());
        let mut overlong = vec![1u8];
        overlong.extend([0xff; 11]);
        assert_eq!(decode_ue(&overlong, &tb), Err("integer out of range"));
        // Any single-byte damage either decodes to something or fails: never panics.
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0xa5;
            let _ = decode_dialog(&bad, &tb);
        }
    }
}

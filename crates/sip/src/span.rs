//! Byte ranges into a shared buffer.

use bytestring::ByteString;

/// A `start..end` byte range into a buffer, stored compactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(crate) const EMPTY: Self = Self { start: 0, end: 0 };

    /// Callers guarantee both values fit in `u32` (buffers are checked on entry).
    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Self {
            start: start as u32,
            end: end as u32,
        }
    }

    #[inline]
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    #[inline]
    pub(crate) fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    #[inline]
    pub(crate) fn bytes(self, buf: &[u8]) -> &[u8] {
        buf.get(self.range()).unwrap_or_default()
    }

    /// The range of a text buffer (no UTF-8 check); empty if out of range or not on a
    /// character boundary.
    #[inline]
    pub(crate) fn text(self, s: &str) -> &str {
        s.get(self.range()).unwrap_or_default()
    }

    /// The range of a text buffer as a zero-copy sub-string (no UTF-8 check).
    #[inline]
    pub(crate) fn sub(self, s: &ByteString) -> ByteString {
        s.slice_ref(self.text(s))
    }

    /// The range as `&str`; empty if it is not UTF-8 (buffers are checked on entry).
    #[inline]
    pub(crate) fn str(self, buf: &[u8]) -> &str {
        std::str::from_utf8(self.bytes(buf)).unwrap_or_default()
    }
}

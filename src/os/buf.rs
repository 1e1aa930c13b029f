//! A fixed-size byte buffer with just enough formatting for log lines.
//!
//! Everything here is async-signal-safe: no allocation, no lock, no
//! `core::fmt` machinery, and no panic (writes past the end are dropped and
//! the line ends with `...`).

pub struct Buf<const N: usize> {
    bytes: [u8; N],
    len: usize,
    truncated: bool,
}

impl<const N: usize> Buf<N> {
    pub const fn new() -> Self {
        Buf {
            bytes: [0; N],
            len: 0,
            truncated: false,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// Append bytes; what does not fit is dropped and remembered.
    pub fn push(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            match self.bytes.get_mut(self.len) {
                Some(slot) => {
                    *slot = b;
                    self.len += 1;
                }
                None => {
                    self.truncated = true;
                    break;
                }
            }
        }
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.push(s.as_bytes())
    }

    pub fn byte(&mut self, b: u8) -> &mut Self {
        self.push(&[b])
    }

    pub fn u64(&mut self, mut v: u64) -> &mut Self {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            if let Some(slot) = tmp.get_mut(i) {
                *slot = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.push(tmp.get(i..).unwrap_or(&[]))
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.byte(b'-');
        }
        self.u64(v.unsigned_abs())
    }

    /// Nanoseconds as microseconds with one decimal: `4.1`.
    pub fn micros(&mut self, ns: u64) -> &mut Self {
        let tenths = (ns + 50) / 100;
        self.u64(tenths / 10).byte(b'.').u64(tenths % 10)
    }

    /// Append as the inside of a JSON string (see [`json_escape`]).
    pub fn json_str(&mut self, s: &[u8]) -> &mut Self {
        json_escape(s, |piece| {
            self.push(piece);
        });
        self
    }

    /// Finish a line: `...` if something was cut, then `\n` (always fits:
    /// the last four bytes are kept for it).
    pub fn end_line(&mut self) -> &[u8] {
        let room = N.saturating_sub(4);
        if self.truncated || self.len > room {
            self.len = self.len.min(room);
            self.truncated = false;
            self.push(b"...");
        }
        self.push(b"\n");
        self.as_bytes()
    }
}

/// `s` as the inside of a JSON string, in pieces handed to `out`: quotes,
/// backslashes and control bytes escaped. The one JSON escaper (the log
/// lines, and the `config` line prepared at load). Async-signal-safe.
pub fn json_escape(s: &[u8], mut out: impl FnMut(&[u8])) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in s {
        match b {
            b'"' => out(b"\\\""),
            b'\\' => out(b"\\\\"),
            b'\n' => out(b"\\n"),
            0..=0x1f => {
                let hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
                let lo = HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0');
                out(&[b'\\', b'u', b'0', b'0', hi, lo])
            }
            _ => out(&[b]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let mut b = Buf::<64>::new();
        b.u64(0)
            .byte(b' ')
            .u64(u64::MAX)
            .byte(b' ')
            .i64(-42)
            .byte(b' ');
        b.i64(i64::MIN)
            .byte(b' ')
            .micros(4_149)
            .byte(b' ')
            .micros(50);
        assert_eq!(
            b.as_bytes(),
            b"0 18446744073709551615 -42 -9223372036854775808 4.1 0.1"
        );
    }

    #[test]
    fn json_escaping() {
        let mut b = Buf::<64>::new();
        b.json_str(b"a\"b\\c\nd\x01\x1fe\xc3\xa9");
        assert_eq!(b.as_bytes(), b"a\\\"b\\\\c\\nd\\u0001\\u001fe\xc3\xa9");
    }

    #[test]
    fn a_line_that_fits() {
        let mut b = Buf::<16>::new();
        assert_eq!(b.str("hello").end_line(), b"hello\n");
    }

    #[test]
    fn a_line_cut_ends_with_dots() {
        let mut b = Buf::<16>::new();
        b.str("0123456789abcdefghij");
        assert_eq!(b.as_bytes(), b"0123456789abcdef");
        assert_eq!(b.end_line(), b"0123456789ab...\n");
        // Exactly filling the room for the newline also cuts.
        let mut b = Buf::<8>::new();
        assert_eq!(b.str("12345").end_line(), b"1234...\n");
    }
}

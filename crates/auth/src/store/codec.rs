//! The byte layout of stored values: a version byte, fixed-width
//! big-endian integers, and strings prefixed by a 2-byte length.
//!
//! Hand-written rather than JSON because the token table holds one entry
//! per recipient of every message for the whole bounce window (tens of
//! millions of rows on a busy relay); this layout is about a third of the
//! JSON size. Decoding checks every length and never panics.

/// Appends values to a buffer.
#[derive(Default)]
pub(super) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A string of at most 65535 bytes (longer ones are cut at a character
    /// boundary; addresses and reasons are far shorter).
    pub fn str(&mut self, s: &str) -> &mut Self {
        let mut end = s.len().min(u16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.extend_from_slice(&(end as u16).to_be_bytes());
        self.0.extend_from_slice(&s.as_bytes()[..end]);
        self
    }
}

/// Reads values back; every method returns `None` past the end.
pub(super) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    pub fn str(&mut self) -> Option<String> {
        let len = self.take(2)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).ok()
    }

    /// Whether every byte was consumed.
    pub fn done(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = Writer::default();
        w.u8(1).u64(u64::MAX - 1).str("héllo").str("");
        let bytes = w.0;
        let mut r = Reader(&bytes);
        assert_eq!(r.u8(), Some(1));
        assert_eq!(r.u64(), Some(u64::MAX - 1));
        assert_eq!(r.str().as_deref(), Some("héllo"));
        assert_eq!(r.str().as_deref(), Some(""));
        assert!(r.done());
        for cut in 0..bytes.len() {
            let mut r = Reader(&bytes[..cut]);
            let all = (|| Some((r.u8()?, r.u64()?, r.str()?, r.str()?)))();
            assert!(all.is_none(), "cut {cut}");
        }
    }

    #[test]
    fn long_strings_are_cut_on_a_char_boundary() {
        let s = "é".repeat(40_000); // 80_000 bytes
        let mut w = Writer::default();
        w.str(&s);
        let got = Reader(&w.0).str().unwrap();
        assert_eq!(got.len(), 65_534);
        assert!(s.starts_with(&got));
    }
}

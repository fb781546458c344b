//! Reading message content off the wire (DATA and BDAT) safely.
//!
//! The end of DATA is `CRLF.CRLF` and nothing else (RFC 5321 §4.1.1.4):
//! `LF.LF`, `CR.CR`, `LF.CRLF`, `CRLF.LF` and the other "SMTP smuggling"
//! shapes are content, never an end. smtp-proto's `DataReceiver` ends data
//! correctly but cannot tell us that content held a bare LF, bare CR or
//! NUL, which we must refuse (or, for bare LF, normalise), so this module
//! frames content itself, byte by byte, in one pass that also un-stuffs
//! dots, enforces the size limit without ever buffering more than it, and
//! measures line lengths and the header section.

use laneway_common::config::BareLf;

/// Limits applied while reading content.
#[derive(Debug, Clone, Copy)]
pub struct ContentLimits {
    /// Largest message kept, in bytes; the rest is read and discarded.
    pub max_size: u64,
    /// What to do with bare LF.
    pub bare_lf: BareLf,
    /// Longest text line in octets, CRLF included (RFC 5321: 1000).
    pub max_line: usize,
    /// Largest header section in bytes.
    pub max_header_bytes: usize,
    /// Most header fields (folded lines count once).
    pub max_header_fields: usize,
}

impl ContentLimits {
    /// Limits for a listener with this size limit and bare-LF policy.
    pub fn new(max_size: u64, bare_lf: BareLf) -> ContentLimits {
        ContentLimits {
            max_size,
            bare_lf,
            max_line: 1000,
            max_header_bytes: 100 * 1024,
            max_header_fields: 1000,
        }
    }
}

/// Why content was refused, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Problems {
    /// Over the size limit.
    pub too_big: bool,
    /// A bare LF (reject mode).
    pub bare_lf: bool,
    /// A bare CR.
    pub bare_cr: bool,
    /// A NUL octet.
    pub nul: bool,
    /// A line over 1000 octets.
    pub long_line: bool,
    /// Header section too large or with too many fields.
    pub header_too_big: bool,
}

impl Problems {
    /// Whether anything is wrong.
    pub fn any(&self) -> bool {
        self.too_big
            || self.bare_lf
            || self.bare_cr
            || self.nul
            || self.long_line
            || self.header_too_big
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the start of a line (after CRLF, or at the very start).
    LineStart,
    /// Inside a line.
    Mid,
    /// Just read a CR inside a line.
    Cr,
    /// DATA only: read a dot at the start of a line.
    Dot,
    /// DATA only: read `.` CR at the start of a line.
    DotCr,
}

/// Frames DATA (dot-stuffed, ends at `CRLF.CRLF`) or BDAT (raw chunks)
/// content into a message buffer.
#[derive(Debug)]
pub struct ContentReader {
    limits: ContentLimits,
    dot_stuffed: bool,
    at: At,
    line_len: usize,
    size: u64,
    in_header: bool,
    header_bytes: usize,
    header_fields: usize,
    problems: Problems,
}

impl ContentReader {
    /// A reader for DATA content.
    pub fn data(limits: ContentLimits) -> ContentReader {
        ContentReader::new(limits, true)
    }

    /// A reader for BDAT content (all chunks of one message).
    pub fn bdat(limits: ContentLimits) -> ContentReader {
        ContentReader::new(limits, false)
    }

    fn new(limits: ContentLimits, dot_stuffed: bool) -> ContentReader {
        ContentReader {
            limits,
            dot_stuffed,
            at: At::LineStart,
            line_len: 0,
            size: 0,
            in_header: true,
            header_bytes: 0,
            header_fields: 0,
            problems: Problems::default(),
        }
    }

    /// What was wrong with the content so far.
    pub fn problems(&self) -> Problems {
        self.problems
    }

    /// Content bytes seen (after un-stuffing), kept or not.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size > self.limits.max_size {
            self.problems.too_big = true;
            // Stop holding content we will refuse anyway.
            out.clear();
            out.shrink_to(64 * 1024);
        } else {
            out.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.line_len + 2 > self.limits.max_line {
            self.problems.long_line = true;
        }
        if self.in_header {
            if self.line_len == 0 {
                self.in_header = false;
            } else {
                self.header_bytes += self.line_len + 2;
                if self.header_bytes > self.limits.max_header_bytes
                    || self.header_fields > self.limits.max_header_fields
                {
                    self.problems.header_too_big = true;
                }
            }
        }
        self.line_len = 0;
        self.at = At::LineStart;
        self.emit(out, b"\r\n");
    }

    fn content_byte(&mut self, out: &mut Vec<u8>, b: u8) {
        if self.at == At::LineStart && self.in_header && b != b' ' && b != b'\t' && b != b'\r' {
            self.header_fields += 1;
        }
        if b == 0 {
            self.problems.nul = true;
        }
        self.line_len += 1;
        self.at = At::Mid;
        self.emit(out, &[b]);
    }

    fn bare_lf(&mut self, out: &mut Vec<u8>) {
        match self.limits.bare_lf {
            BareLf::Reject => {
                self.problems.bare_lf = true;
                self.line_len += 1;
                self.at = At::Mid;
                self.emit(out, b"\n");
            }
            BareLf::Normalize => {
                // A line break for the content, but never for framing: the
                // next line's leading dot is not un-stuffed and cannot end DATA.
                self.end_line(out);
                self.at = At::Mid;
            }
        }
    }

    /// Feeds bytes from the wire. For DATA, returns `Some(n)` when the end of
    /// data was found after consuming `n` bytes of `input` (the rest belongs
    /// to the next command); `None` when all of `input` was consumed.
    /// For BDAT, feed exactly the chunk's bytes; it always returns `None`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.at == At::Mid {
                // The body of a line, in one piece: the bytes up to the
                // next CR, LF or NUL are plain content (what feeding them
                // one by one would do, without a state change per byte:
                // that was a fifth of the CPU time of 100 KB messages).
                let rest = &input[i..];
                let run = memchr::memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                if run > 0 {
                    self.line_len += run;
                    self.emit(out, &rest[..run]);
                    i += run;
                    continue;
                }
            }
            let b = input[i];
            i += 1;
            match (self.at, b) {
                (At::LineStart, b'.') if self.dot_stuffed => self.at = At::Dot,
                (At::Dot, b'\r') => self.at = At::DotCr,
                (At::DotCr, b'\n') => return Some(i),
                (At::DotCr, _) => {
                    // ".<CR>x": the dot was stuffing; the CR is bare.
                    self.problems.bare_cr = true;
                    self.content_byte(out, b'\r');
                    self.feed_one(out, b);
                }
                (At::Dot, _) => {
                    // Un-stuff: drop the leading dot, keep the rest.
                    self.at = At::Mid;
                    self.feed_one(out, b);
                }
                _ => self.feed_one(out, b),
            }
        }
        None
    }

    fn feed_one(&mut self, out: &mut Vec<u8>, b: u8) {
        match (self.at, b) {
            (At::Cr, b'\n') => {
                // drop the CR we held back and end the line
                self.end_line(out);
            }
            (At::Cr, _) => {
                self.problems.bare_cr = true;
                self.content_byte(out, b'\r');
                self.feed_one(out, b);
            }
            (_, b'\r') => self.at = At::Cr,
            (_, b'\n') => self.bare_lf(out),
            _ => self.content_byte(out, b),
        }
    }

    /// Ends BDAT content (after the LAST chunk): a CR still held back is bare.
    /// Content that does not end with CRLF gets one, so that it can be
    /// relayed with DATA.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.at == At::Cr {
            self.problems.bare_cr = true;
            self.content_byte(out, b'\r');
        }
        if self.at != At::LineStart && !out.is_empty() {
            self.end_line(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ContentLimits {
        ContentLimits::new(1 << 20, BareLf::Reject)
    }

    fn data(input: &[u8], l: ContentLimits) -> (Option<usize>, Vec<u8>, Problems) {
        let mut r = ContentReader::data(l);
        let mut out = Vec::new();
        let end = r.feed(input, &mut out);
        (end, out, r.problems())
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf_and_unstuffs() {
        let input = b"Subject: x\r\n\r\n..leading\r\nbody\r\n.\r\nMAIL FROM:<>\r\n";
        let (end, out, p) = data(input, limits());
        assert_eq!(end, Some(input.len() - b"MAIL FROM:<>\r\n".len()));
        assert_eq!(out, b"Subject: x\r\n\r\n.leading\r\nbody\r\n");
        assert!(!p.any());
    }

    #[test]
    fn empty_message() {
        let (end, out, _) = data(b".\r\n", limits());
        assert_eq!(end, Some(3));
        assert!(out.is_empty());
    }

    #[test]
    fn smuggling_shapes_never_end_data() {
        let shapes = crate::testing::SMUGGLING_ENDS;
        for shape in shapes {
            let mut input = b"Subject: x\r\n\r\nfirst".to_vec();
            input.extend_from_slice(shape);
            input.extend_from_slice(crate::testing::SMUGGLED_TRANSACTION);
            let (end, _, p) = data(&input, limits());
            assert_eq!(end, None, "ended early on {shape:?}");
            assert!(p.bare_lf || p.bare_cr || p.nul, "not flagged: {shape:?}");
            // and normalize mode never ends early either
            let (end, _, _) = data(&input, ContentLimits::new(1 << 20, BareLf::Normalize));
            assert_eq!(end, None, "normalize ended early on {shape:?}");
            // the real end still works afterwards
            let mut r = ContentReader::data(limits());
            let mut out = Vec::new();
            assert_eq!(r.feed(&input, &mut out), None);
            assert_eq!(r.feed(b"\r\n.\r\n", &mut out), Some(5));
        }
    }

    #[test]
    fn normalize_turns_bare_lf_into_crlf() {
        let l = ContentLimits::new(1 << 20, BareLf::Normalize);
        let (end, out, p) = data(b"Subject: x\n\nline\n.\r\n", l);
        assert_eq!(end, None);
        assert!(!p.any());
        let mut r = ContentReader::data(l);
        let mut out2 = Vec::new();
        r.feed(b"Subject: x\n\nline\n.\r\n", &mut out2);
        assert_eq!(r.feed(b"\r\n.\r\n", &mut out2), Some(5));
        assert_eq!(out, b"Subject: x\r\n\r\nline\r\n.\r\n");
        assert!(out2.starts_with(b"Subject: x\r\n\r\nline\r\n.\r\n"));
    }

    /// Whole buffers (where a line's body is taken in one piece) and one
    /// byte at a time frame any input alike: the same end, content, size
    /// and problems, under both bare-LF policies and with the size limit
    /// crossed mid-line. Inputs from a small alphabet of the bytes that
    /// matter, many thousands of them (a fixed seed: the same every run).
    #[test]
    fn whole_buffers_and_single_bytes_frame_alike() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b".\r\n\0a: \tb";
        for case in 0..20_000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let bare_lf = if case % 2 == 0 {
                BareLf::Reject
            } else {
                BareLf::Normalize
            };
            let mut l = ContentLimits::new(if case % 3 == 0 { 7 } else { 1 << 20 }, bare_lf);
            l.max_line = 12;
            l.max_header_fields = 2;
            for dot_stuffed in [true, false] {
                let reader = || ContentReader::new(l, dot_stuffed);
                let (mut whole, mut out_whole) = (reader(), Vec::new());
                let end_whole = whole.feed(&input, &mut out_whole);
                let (mut single, mut out_single) = (reader(), Vec::new());
                let mut end_single = None;
                for (i, b) in input.iter().enumerate() {
                    if single
                        .feed(std::slice::from_ref(b), &mut out_single)
                        .is_some()
                    {
                        end_single = Some(i + 1);
                        break;
                    }
                }
                let what = format!(
                    "{:?} {bare_lf:?} dot_stuffed={dot_stuffed}",
                    input.escape_ascii().to_string()
                );
                assert_eq!(end_whole, end_single, "{what}");
                assert_eq!(out_whole, out_single, "{what}");
                assert_eq!(whole.size(), single.size(), "{what}");
                assert_eq!(whole.problems(), single.problems(), "{what}");
                assert_eq!(whole.at, single.at, "{what}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_is_the_same() {
        let input = b"A: b\r\n\r\n..x\r\ny\r\n.\r\n";
        let mut r = ContentReader::data(limits());
        let mut out = Vec::new();
        let mut end = None;
        for (i, b) in input.iter().enumerate() {
            if r.feed(std::slice::from_ref(b), &mut out).is_some() {
                end = Some(i);
            }
        }
        assert_eq!(end, Some(input.len() - 1));
        assert_eq!(out, b"A: b\r\n\r\n.x\r\ny\r\n");
    }

    #[test]
    fn size_limit_discards_but_keeps_reading() {
        let mut l = limits();
        l.max_size = 10;
        let (end, out, p) = data(b"0123456789abcdef\r\n.\r\n", l);
        assert!(end.is_some());
        assert!(p.too_big);
        assert!(out.len() <= 10);
    }

    #[test]
    fn long_lines_and_big_headers_are_flagged() {
        let mut input = vec![b'a'; 999];
        input.extend_from_slice(b"\r\n.\r\n");
        assert!(data(&input, limits()).2.long_line);
        let mut input = vec![b'a'; 998];
        input.extend_from_slice(b"\r\n.\r\n");
        assert!(!data(&input, limits()).2.long_line);
        let mut l = limits();
        l.max_header_fields = 3;
        let (_, _, p) = data(
            b"A: 1\r\nB: 2\r\n folded\r\nC: 3\r\nD: 4\r\n\r\nE: body\r\n.\r\n",
            l,
        );
        assert!(p.header_too_big);
        let (_, _, p) = data(
            b"A: 1\r\nB: 2\r\n folded\r\nC: 3\r\n\r\nE: body\r\nF: x\r\n.\r\n",
            l,
        );
        assert!(!p.header_too_big);
    }

    #[test]
    fn bdat_is_raw_and_checked_across_chunks() {
        let mut r = ContentReader::bdat(limits());
        let mut out = Vec::new();
        assert_eq!(r.feed(b"A: b\r\n\r\n.x\r", &mut out), None);
        assert_eq!(r.feed(b"\nlast", &mut out), None);
        r.finish(&mut out);
        assert_eq!(out, b"A: b\r\n\r\n.x\r\nlast\r\n");
        assert!(!r.problems().any());
        let mut r = ContentReader::bdat(limits());
        let mut out = Vec::new();
        r.feed(b"A: b\r\n\r\nx\n.\r\n", &mut out);
        r.finish(&mut out);
        assert!(r.problems().bare_lf);
        let mut r = ContentReader::bdat(limits());
        r.feed(b"A: b\r\n\r\nx\r", &mut out);
        r.finish(&mut out);
        assert!(r.problems().bare_cr);
    }
}

//! The spool file format: self-delimiting, checksummed, with an explicit
//! end marker (as Postfix's queue files are), so a truncated or corrupt file
//! is recognised at start-up and quarantined rather than delivered.
//!
//! ```text
//! LANEWAY-SPOOL 1 <envelope length> <message length> <crc32 hex>\n
//! <envelope JSON>\n
//! <message bytes>
//! \nEND\n
//! ```
//! The CRC-32 covers the envelope JSON and the message bytes.

use std::io;

use laneway_common::Envelope;

const MAGIC: &str = "LANEWAY-SPOOL 1 ";
/// The trailer that ends every complete spool file.
pub const TRAILER: &[u8] = b"\nEND\n";
/// The longest header line we accept (the magic and three numbers).
pub const MAX_HEADER: usize = 96;

/// The parsed first line of a spool file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Length of the envelope JSON.
    pub env_len: usize,
    /// Length of the message.
    pub msg_len: usize,
    /// CRC-32 of envelope JSON and message.
    pub crc: u32,
    /// Length of the header line including its LF.
    pub header_len: usize,
}

impl Header {
    /// The total size a complete file with this header has.
    pub fn file_len(&self) -> u64 {
        (self.header_len + self.env_len + 1 + self.msg_len + TRAILER.len()) as u64
    }

    /// Offset of the message bytes in the file.
    pub fn msg_offset(&self) -> usize {
        self.header_len + self.env_len + 1
    }
}

/// Encodes envelope and message into the bytes of a spool file.
pub fn encode(envelope: &Envelope, message: &[u8]) -> io::Result<Vec<u8>> {
    let env = serde_json::to_vec(envelope).map_err(io::Error::other)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&env);
    crc.update(message);
    let header = format!(
        "{MAGIC}{} {} {:08x}\n",
        env.len(),
        message.len(),
        crc.finalize()
    );
    let mut out = Vec::with_capacity(header.len() + env.len() + 1 + message.len() + TRAILER.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&env);
    out.push(b'\n');
    out.extend_from_slice(message);
    out.extend_from_slice(TRAILER);
    Ok(out)
}

fn corrupt(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Parses the header line at the start of `bytes`.
pub fn parse_header(bytes: &[u8]) -> io::Result<Header> {
    let end = bytes
        .iter()
        .take(MAX_HEADER)
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no spool header line"))?;
    let line = std::str::from_utf8(&bytes[..end]).map_err(|_| corrupt("header is not UTF-8"))?;
    let rest = line
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("not a Laneway spool file (bad magic)"))?;
    let mut it = rest.split(' ');
    let mut num = |what: &str| -> io::Result<&str> {
        it.next()
            .ok_or_else(|| corrupt(format!("header lacks {what}")))
    };
    let env_len = num("envelope length")?
        .parse()
        .map_err(|_| corrupt("bad envelope length"))?;
    let msg_len = num("message length")?
        .parse()
        .map_err(|_| corrupt("bad message length"))?;
    let crc = u32::from_str_radix(num("checksum")?, 16).map_err(|_| corrupt("bad checksum"))?;
    Ok(Header {
        env_len,
        msg_len,
        crc,
        header_len: end + 1,
    })
}

/// Decodes the envelope from a prefix of a spool file holding at least the
/// header line and the envelope JSON.
pub fn decode_envelope(prefix: &[u8], header: &Header) -> io::Result<Envelope> {
    let env = prefix
        .get(header.header_len..header.header_len + header.env_len)
        .ok_or_else(|| corrupt("truncated envelope"))?;
    serde_json::from_slice(env).map_err(|e| corrupt(format!("bad envelope: {e}")))
}

/// Decodes a whole spool file, checking length, trailer and checksum.
/// Returns the envelope and the range of the message bytes.
pub fn decode(bytes: &[u8]) -> io::Result<(Envelope, std::ops::Range<usize>)> {
    let h = parse_header(bytes)?;
    if bytes.len() as u64 != h.file_len() {
        return Err(corrupt(format!(
            "length {} does not match header ({})",
            bytes.len(),
            h.file_len()
        )));
    }
    if !bytes.ends_with(TRAILER) {
        return Err(corrupt("missing END trailer"));
    }
    let env_end = h.header_len + h.env_len;
    let msg = h.msg_offset()..h.msg_offset() + h.msg_len;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[h.header_len..env_end]);
    crc.update(&bytes[msg.clone()]);
    if crc.finalize() != h.crc {
        return Err(corrupt("checksum mismatch"));
    }
    let env = decode_envelope(bytes, &h)?;
    Ok((env, msg))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use laneway_common::{Origin, Recipient};

    pub(crate) fn envelope() -> Envelope {
        let mut e = Envelope::new(
            "a@example.com",
            vec![Recipient::new("b@example.net")],
            Origin::local(),
        );
        e.queued_at_ms = 1;
        e
    }

    #[test]
    fn round_trip() {
        let msg = b"Subject: x\r\n\r\nbody\r\n";
        let bytes = encode(&envelope(), msg).unwrap();
        let (env, range) = decode(&bytes).unwrap();
        assert_eq!(env, envelope());
        assert_eq!(&bytes[range], msg);
    }

    #[test]
    fn truncation_and_corruption_are_detected() {
        let bytes = encode(&envelope(), b"Subject: x\r\n\r\nbody\r\n").unwrap();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let n = flipped.len() - 8;
        flipped[n] ^= 0x20;
        assert!(decode(&flipped).is_err());
        assert!(decode(b"garbage\n").is_err());
    }
}

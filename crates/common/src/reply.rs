//! SMTP replies with enhanced status codes (RFC 5321 §4.2, RFC 3463), and
//! the one mapping from Laneway's errors to them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An SMTP reply: a three-digit code, an RFC 3463 enhanced status code and
/// one or more lines of text. Serialized as `{"code": 550, "status":
/// "5.1.1", "lines": ["…"]}` (the status absent when there is none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireReply", try_from = "WireReply")]
pub struct Reply {
    /// The basic reply code, e.g. 250.
    pub code: u16,
    /// The enhanced status code `class.subject.detail`, e.g. (2, 0, 0).
    /// `None` only for the replies that carry none (220 greeting, 354).
    pub esc: Option<(u8, u8, u16)>,
    /// The text lines.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    pub fn new(code: u16, esc: (u8, u8, u16), text: impl Into<String>) -> Reply {
        Reply {
            code,
            esc: Some(esc),
            lines: vec![text.into()],
        }
    }

    /// A one-line reply without an enhanced status code (220, 354, 334).
    pub fn bare(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            esc: None,
            lines: vec![text.into()],
        }
    }

    /// Whether this is a positive completion (2xx).
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Whether this is a transient failure (4xx).
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Whether this is a permanent failure (5xx).
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The enhanced status code as text, e.g. `5.7.1`.
    pub fn status(&self) -> Option<String> {
        self.esc.map(|(a, b, c)| format!("{a}.{b}.{c}"))
    }

    /// The whole reply as one string, each line `<code> <enhanced status>
    /// <text>` (the status left out when there is none), joined by
    /// newlines: what the bounce classes and the shaping rules match.
    pub fn joined(&self) -> String {
        let status = self.status().map(|s| format!("{s} ")).unwrap_or_default();
        let n = self.lines.len().max(1);
        (0..n)
            .map(|i| {
                let text = self.lines.get(i).map(String::as_str).unwrap_or("");
                format!("{} {status}{text}", self.code)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The reply as it goes on the wire, CRLF-terminated, multi-line when
    /// needed. Control characters in the text are replaced so that a reply
    /// can never break the protocol framing.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let sep = if i + 1 == n { ' ' } else { '-' };
            out.push_str(&self.code.to_string());
            out.push(sep);
            if let Some((a, b, c)) = self.esc {
                out.push_str(&format!("{a}.{b}.{c} "));
            }
            out.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
            out.push_str("\r\n");
        }
        out
    }
}

/// The serialized form of a [`Reply`].
#[derive(Serialize, Deserialize)]
struct WireReply {
    code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<crate::delivery::Status>,
    lines: Vec<String>,
}

impl From<Reply> for WireReply {
    fn from(r: Reply) -> WireReply {
        WireReply {
            code: r.code,
            status: r.esc.map(|(c, s, d)| crate::delivery::Status::new(c, s, d)),
            lines: r.lines,
        }
    }
}

impl TryFrom<WireReply> for Reply {
    type Error = String;
    fn try_from(w: WireReply) -> Result<Reply, String> {
        if !(200..600).contains(&w.code) {
            return Err(format!("reply code {} out of range", w.code));
        }
        Ok(Reply {
            code: w.code,
            esc: w.status.map(|s| (s.class, s.subject, s.detail)),
            lines: w.lines,
        })
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = self.to_wire();
        write!(f, "{}", wire.trim_end().replace("\r\n", " / "))
    }
}

/// Errors that a front door may get back from ingest, each with the one
/// SMTP reply and HTTP status that report it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An `X-Priority-Queue` header (or other priority source) is not 0–9.
    #[error("invalid priority in {source_name}: {detail}")]
    InvalidPriority {
        /// Where the value came from (`X-Priority-Queue header`, `priority field`, …).
        source_name: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The spool is below `[spool] min_free_bytes`.
    #[error("insufficient system storage")]
    SpoolFull,
    /// Laneway is shutting down and takes no new mail.
    #[error("service shutting down")]
    Draining,
    /// Writing the message failed; nothing was stored.
    #[error("spool write failed: {0}")]
    Io(#[from] std::io::Error),
    /// The message has been around a loop (too many `Received:` headers).
    #[error("mail loop detected: {0} Received headers")]
    Loop(usize),
    /// The message headers are malformed or over a limit.
    #[error("{0}")]
    BadContent(String),
    /// The sender is not allowed for this user or key.
    #[error("{0}")]
    SenderNotAllowed(String),
    /// No recipient left (all suppressed or refused).
    #[error("no valid recipients")]
    NoRecipients,
}

impl IngestError {
    /// The SMTP reply that reports this error.
    pub fn reply(&self) -> Reply {
        match self {
            IngestError::InvalidPriority { .. } => Reply::new(550, (5, 6, 0), self.to_string()),
            IngestError::SpoolFull => Reply::new(452, (4, 3, 1), "Insufficient system storage"),
            IngestError::Draining => {
                Reply::new(421, (4, 3, 2), "Service shutting down, try again later")
            }
            IngestError::Io(_) => Reply::new(
                451,
                (4, 3, 0),
                "Local error in processing, message not accepted; try again later",
            ),
            IngestError::Loop(_) => Reply::new(554, (5, 4, 6), self.to_string()),
            IngestError::BadContent(_) => Reply::new(550, (5, 6, 0), self.to_string()),
            IngestError::SenderNotAllowed(_) => Reply::new(550, (5, 7, 1), self.to_string()),
            IngestError::NoRecipients => Reply::new(554, (5, 5, 1), "No valid recipients"),
        }
    }

    /// The HTTP status that reports this error on the API.
    pub fn http_status(&self) -> u16 {
        match self {
            IngestError::InvalidPriority { .. } | IngestError::BadContent(_) => 400,
            IngestError::SpoolFull => 507,
            IngestError::Draining => 503,
            IngestError::Io(_) => 500,
            IngestError::Loop(_) => 400,
            IngestError::SenderNotAllowed(_) => 403,
            IngestError::NoRecipients => 400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(
            Reply::new(250, (2, 0, 0), "Ok").to_wire(),
            "250 2.0.0 Ok\r\n"
        );
        let r = Reply {
            code: 250,
            esc: None,
            lines: vec!["a".into(), "b".into()],
        };
        assert_eq!(r.to_wire(), "250-a\r\n250 b\r\n");
        assert_eq!(
            Reply::new(550, (5, 7, 1), "bad\r\nMAIL FROM").to_wire(),
            "550 5.7.1 bad  MAIL FROM\r\n"
        );
    }

    #[test]
    fn errors_map_to_rfc_codes() {
        assert_eq!(
            IngestError::SpoolFull.reply().to_wire(),
            "452 4.3.1 Insufficient system storage\r\n"
        );
        let e = IngestError::InvalidPriority {
            source_name: "X-Priority-Queue header".into(),
            detail: "got 12".into(),
        };
        assert_eq!(e.reply().code, 550);
        assert_eq!(e.reply().status().unwrap(), "5.6.0");
    }
}

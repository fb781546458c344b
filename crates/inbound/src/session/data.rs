//! The end of message content: checking what the content reader found and
//! handing the message to ingest (DATA: RFC 5321 §4.1.1.4; BDAT: RFC 3030).

use laneway_common::envelope::{Door, Envelope, Origin};
use laneway_common::{LaneRequest, Reply, Submission};

use super::Session;
use crate::content::{ContentReader, Problems};

impl Session {
    /// DATA content ended at `CRLF.CRLF`.
    pub(super) async fn end_of_data(&mut self, reader: ContentReader, body: Vec<u8>) {
        self.end_of_message(reader.problems(), body).await;
    }

    /// A BDAT chunk has been read completely.
    pub(super) async fn end_of_chunk(&mut self, last: bool, refuse: Option<Reply>) {
        if let Some(r) = refuse {
            self.reply(r);
            return;
        }
        if !last {
            let size = self
                .tx
                .as_ref()
                .and_then(|t| t.bdat.as_ref())
                .map(|(r, _)| r.size())
                .unwrap_or(0);
            self.reply(Reply::new(
                250,
                (2, 0, 0),
                format!("{size} octets received"),
            ));
            return;
        }
        let Some((mut reader, mut body)) = self.tx.as_mut().and_then(|t| t.bdat.take()) else {
            self.reply(Reply::new(503, (5, 5, 1), "Need MAIL command first"));
            return;
        };
        reader.finish(&mut body);
        self.end_of_message(reader.problems(), body).await;
    }

    async fn end_of_message(&mut self, problems: Problems, body: Vec<u8>) {
        let Some(tx) = self.tx.take() else {
            self.reply(Reply::new(503, (5, 5, 1), "Need MAIL command first"));
            return;
        };
        if let Some(r) = refusal(&problems).or_else(|| header_encoding(&body)) {
            tracing::info!(
                listener = %self.conn.listener,
                peer = %self.conn.peer.ip(),
                from = %tx.sender,
                reply = %r,
                "message refused"
            );
            self.reply(r);
            return;
        }
        let settings = self.shared.settings.load_full();
        let trusted = self.is_trusted();
        let lane = if self.listener.trust_priority && trusted {
            LaneRequest {
                explicit: tx
                    .params
                    .mt_priority
                    .map(|p| (p, "MT-PRIORITY parameter".to_string())),
                trust_header: true,
                fallback: settings.default_priority,
            }
        } else {
            LaneRequest::fixed(settings.default_priority)
        };
        let origin = Origin {
            door: Door::Smtp,
            name: self.conn.listener.clone(),
            peer: Some(self.conn.peer.ip()),
            helo: self.conn.helo.clone(),
            auth_user: self.conn.auth_user.clone(),
            tls: self.conn.tls.clone(),
            protocol: Some(self.conn.protocol().to_string()),
            trusted,
        };
        let mut envelope = Envelope::new(tx.sender.clone(), tx.recipients.clone(), origin);
        envelope.ret = tx.params.ret;
        envelope.envid = tx.params.envid.clone();
        envelope.smtputf8 = tx.params.smtputf8;
        envelope.body = tx.params.body;
        envelope.require_tls = tx.params.require_tls;
        let submission = Submission {
            envelope,
            message: body,
            lane,
        };
        match self.shared.ingest.submit(submission).await {
            Ok(acc) => {
                self.conn.accepted += 1;
                self.reply(Reply::new(
                    250,
                    (2, 0, 0),
                    format!("Ok: queued as {}", acc.id),
                ));
            }
            Err(e) => {
                tracing::info!(
                    listener = %self.conn.listener,
                    peer = %self.conn.peer.ip(),
                    from = %tx.sender,
                    error = %e,
                    "message not accepted"
                );
                self.reply(e.reply());
            }
        }
        drop(tx);
    }
}

/// The reply refusing a header section that is not valid UTF-8: header
/// fields are ASCII (RFC 5322) or UTF-8 (RFC 6532), never raw 8-bit text in
/// some other charset, which no receiver could decode reliably. Bodies may
/// hold any 8-bit text, as with Postfix.
fn header_encoding(message: &[u8]) -> Option<Reply> {
    let header = &message[..laneway_common::headers::body_offset(message)];
    if header.is_ascii() || std::str::from_utf8(header).is_ok() {
        return None;
    }
    Some(Reply::new(
        550,
        (5, 6, 0),
        "Message header is not valid UTF-8 (RFC 6532); encode it per RFC 2047",
    ))
}

/// The reply refusing content with these problems, if any (most serious first).
pub(crate) fn refusal(p: &Problems) -> Option<Reply> {
    if p.too_big {
        Some(Reply::new(
            552,
            (5, 3, 4),
            "Message size exceeds fixed maximum message size",
        ))
    } else if p.bare_lf || p.bare_cr {
        Some(Reply::new(
            550,
            (5, 6, 0),
            "Message contains bare CR or LF characters; lines must end with CRLF (RFC 5321 2.3.8)",
        ))
    } else if p.nul {
        Some(Reply::new(
            550,
            (5, 6, 0),
            "Message contains NUL characters",
        ))
    } else if p.header_too_big {
        Some(Reply::new(
            552,
            (5, 3, 4),
            "Message header section too large",
        ))
    } else if p.long_line {
        Some(Reply::new(
            550,
            (5, 6, 0),
            "Message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)",
        ))
    } else {
        None
    }
}

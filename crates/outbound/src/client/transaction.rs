//! One mail transaction over an open session (RFC 5321 §3.3, RFC 2920
//! pipelining, RFC 3030 BDAT, RFC 3461 DSN parameters): every recipient
//! gets its own typed outcome, with the stage and the remote reply that
//! decided it.

use laneway_common::Reply;
use laneway_common::delivery::{Outcome, Stage, Status};

use super::{Client, ClientError};

/// One transaction to send.
#[derive(Debug, Clone)]
pub struct Transaction<'a> {
    /// Reverse path (empty for `<>`).
    pub from: &'a str,
    /// Recipients: index, address, NOTIFY= value, ORCPT (`rfc822;addr`).
    pub rcpts: Vec<(usize, &'a str, Option<String>, Option<&'a str>)>,
    /// The message (CRLF line ends, not dot-stuffed).
    pub message: &'a [u8],
    /// Needs SMTPUTF8.
    pub smtputf8: bool,
    /// Has 8-bit content (BODY=8BITMIME).
    pub eightbit: bool,
    /// RFC 3461 RET.
    pub ret: Option<&'static str>,
    /// RFC 3461 ENVID.
    pub envid: Option<&'a str>,
    /// RFC 8689 REQUIRETLS: passed on; the connection must be TLS to a
    /// server that offers it (the dispatcher also checks the certificate).
    pub require_tls: bool,
}

/// The result of a transaction.
#[derive(Debug, Clone, Default)]
pub struct TxResult {
    /// One outcome per recipient.
    pub outcomes: Vec<(usize, Outcome)>,
    /// The server pushed back (421, 4.7.x).
    pub throttled: bool,
    /// The connection can carry another transaction.
    pub reusable: bool,
}

impl Client {
    /// What this server cannot take of the transaction, refused before
    /// MAIL (never downgraded): a permanent failure for every recipient.
    fn refusal(&self, tx: &Transaction<'_>) -> Option<Outcome> {
        let (status, why) = if tx.require_tls && !(self.caps.requiretls && self.tls.is_some()) {
            (
                Status::new(5, 7, 10),
                format!(
                    "REQUIRETLS needed: {} does not offer REQUIRETLS over TLS",
                    self.host
                ),
            )
        } else if tx.smtputf8 && !self.caps.smtputf8 {
            (
                Status::new(5, 6, 7),
                format!(
                    "{} does not support SMTPUTF8, which this message needs",
                    self.host
                ),
            )
        } else if tx.eightbit && !self.caps.eightbit {
            (
                Status::new(5, 6, 3),
                format!(
                    "{} does not support 8BITMIME and the message has 8-bit content",
                    self.host
                ),
            )
        } else if self.caps.size > 0 && tx.message.len() as u64 > self.caps.size {
            (
                Status::new(5, 3, 4),
                format!(
                    "Message too big for {} (limit {} bytes)",
                    self.host, self.caps.size
                ),
            )
        } else {
            return None;
        };
        Some(Outcome::permanent(Stage::Policy, status, why).at(Some(self.hop())))
    }

    /// Sends one transaction and reports every recipient's outcome.
    pub async fn send(&mut self, tx: &Transaction<'_>) -> TxResult {
        let all = |o: Outcome| -> Vec<(usize, Outcome)> {
            tx.rcpts.iter().map(|(i, ..)| (*i, o.clone())).collect()
        };
        if let Some(o) = self.refusal(tx) {
            return TxResult {
                outcomes: all(o),
                throttled: false,
                reusable: true,
            };
        }
        let mut stage = Stage::Mail;
        let mut result = TxResult {
            outcomes: Vec::new(),
            throttled: false,
            reusable: true,
        };
        if let Err(e) = self.transaction(tx, &mut stage, &mut result).await {
            // recipients already refused keep their own outcome; the rest
            // get the error, at the stage it happened
            let o = e.outcome(stage, Some(self.hop()));
            for (i, ..) in &tx.rcpts {
                if !result.outcomes.iter().any(|(j, _)| j == i) {
                    result.outcomes.push((*i, o.clone()));
                }
            }
            result.reusable = false;
        }
        result
    }

    fn mail_line(&self, tx: &Transaction<'_>) -> String {
        let mut line = format!("MAIL FROM:<{}>", tx.from);
        if self.caps.size_ext {
            line.push_str(&format!(" SIZE={}", tx.message.len()));
        }
        if tx.eightbit {
            line.push_str(" BODY=8BITMIME");
        }
        if tx.smtputf8 {
            line.push_str(" SMTPUTF8");
        }
        if tx.require_tls {
            line.push_str(" REQUIRETLS");
        }
        if self.caps.dsn {
            if let Some(r) = tx.ret {
                line.push_str(&format!(" RET={r}"));
            }
            if let Some(e) = tx.envid {
                line.push_str(&format!(" ENVID={}", xtext(e)));
            }
        }
        line.push_str("\r\n");
        line
    }

    fn rcpt_line(&self, addr: &str, notify: &Option<String>, orcpt: Option<&str>) -> String {
        let mut line = format!("RCPT TO:<{addr}>");
        if self.caps.dsn {
            if let Some(n) = notify {
                line.push_str(&format!(" NOTIFY={n}"));
            }
            if let Some(o) = orcpt {
                let (kind, value) = o.split_once(';').unwrap_or(("rfc822", o));
                line.push_str(&format!(" ORCPT={kind};{}", xtext(value)));
            }
        }
        line.push_str("\r\n");
        line
    }

    /// The transaction proper; `stage` follows it, so that an error says
    /// where it happened.
    async fn transaction(
        &mut self,
        tx: &Transaction<'_>,
        stage: &mut Stage,
        result: &mut TxResult,
    ) -> Result<(), ClientError> {
        let cmd = self.timeouts.command;
        let bdat = self.caps.chunking;
        let hop = Some(self.hop());
        let mail = self.mail_line(tx);
        let rcpts: Vec<String> = tx
            .rcpts
            .iter()
            .map(|(_, a, n, o)| self.rcpt_line(a, n, *o))
            .collect();
        let pipelined_data = self.caps.pipelining && !bdat;
        if self.caps.pipelining {
            let mut batch = mail.clone();
            for r in &rcpts {
                batch.push_str(r);
            }
            if pipelined_data {
                batch.push_str("DATA\r\n");
            }
            self.write(batch.as_bytes(), cmd).await?;
        } else {
            self.write(mail.as_bytes(), cmd).await?;
        }
        let mail_reply = self.read_reply(cmd).await?;
        if mail_reply.code / 100 != 2 {
            note_pushback(&mail_reply, result);
            let outcome = Outcome::remote(Stage::Mail, mail_reply, hop);
            result.outcomes = tx
                .rcpts
                .iter()
                .map(|(i, ..)| (*i, outcome.clone()))
                .collect();
            if self.caps.pipelining {
                // drain the replies to what was pipelined after MAIL
                for _ in 0..rcpts.len() + usize::from(pipelined_data) {
                    if self.read_reply(cmd).await.is_err() {
                        result.reusable = false;
                        return Ok(());
                    }
                }
            }
            if result.reusable && self.rset().await.is_err() {
                result.reusable = false;
            }
            return Ok(());
        }
        *stage = Stage::Rcpt;
        let mut accepted = Vec::new();
        for (n, (idx, ..)) in tx.rcpts.iter().enumerate() {
            if !self.caps.pipelining {
                self.write(rcpts[n].as_bytes(), cmd).await?;
            }
            let r = self.read_reply(cmd).await?;
            if r.code / 100 == 2 {
                accepted.push(*idx);
            } else {
                note_pushback(&r, result);
                let closing = r.code == 421;
                result
                    .outcomes
                    .push((*idx, Outcome::remote(Stage::Rcpt, r, hop.clone())));
                if closing {
                    let o = result.outcomes.last().expect("pushed").1.clone();
                    rest_get(result, tx, o);
                    return Ok(());
                }
            }
        }
        *stage = Stage::Data;
        if accepted.is_empty() {
            if pipelined_data {
                let _ = self.read_reply(cmd).await?;
            }
            self.rset().await?;
            return Ok(());
        }
        let final_reply = if bdat {
            let mut chunk = format!("BDAT {} LAST\r\n", tx.message.len()).into_bytes();
            chunk.extend_from_slice(tx.message);
            self.write(&chunk, self.timeouts.data).await?;
            self.read_reply(self.timeouts.data).await?
        } else {
            if !pipelined_data {
                self.write(b"DATA\r\n", cmd).await?;
            }
            let r = self.read_reply(cmd).await?;
            if r.code != 354 {
                note_pushback(&r, result);
                let o = Outcome::remote(Stage::Data, r, hop);
                result
                    .outcomes
                    .extend(accepted.iter().map(|i| (*i, o.clone())));
                self.rset().await?;
                return Ok(());
            }
            let body = dot_stuff(tx.message);
            self.write(&body, self.timeouts.data).await?;
            self.read_reply(self.timeouts.data).await?
        };
        note_pushback(&final_reply, result);
        let closing = final_reply.code == 421;
        let mut o = Outcome::remote(Stage::Data, final_reply, hop);
        o.dsn_passed = o.is_delivered() && self.caps.dsn;
        result
            .outcomes
            .extend(accepted.iter().map(|i| (*i, o.clone())));
        if closing {
            result.reusable = false;
        }
        Ok(())
    }

    async fn rset(&mut self) -> Result<(), ClientError> {
        let r = self.command("RSET\r\n", self.timeouts.command).await?;
        if r.code / 100 == 2 {
            Ok(())
        } else {
            Err(ClientError::Rejected(Stage::Mail, r))
        }
    }
}

/// After a 421 to RCPT: every recipient not answered yet gets the same
/// (transient) outcome, and the connection is done.
fn rest_get(result: &mut TxResult, tx: &Transaction<'_>, o: Outcome) {
    for (i, ..) in &tx.rcpts {
        if !result.outcomes.iter().any(|(j, _)| j == i) {
            result.outcomes.push((*i, o.clone()));
        }
    }
    result.reusable = false;
    result.throttled = true;
}

/// Notes replies that mean "slow down": 421 and 4.7.x.
fn note_pushback(r: &Reply, result: &mut TxResult) {
    if r.code == 421 {
        result.throttled = true;
        result.reusable = false;
    } else if r.code / 100 == 4 && matches!(r.esc, Some((4, 7, _))) {
        result.throttled = true;
    }
}

/// RFC 3461 §4 xtext: `+` followed by two hex digits for anything outside
/// `!`..`~` and for `+` and `=`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Dot-stuffs a message for DATA (RFC 5321 §4.5.2) and appends the end of
/// data. A line end is always CRLF on the wire: a stray bare CR or LF (which
/// ingest never stores) is sent as CRLF rather than relayed.
pub fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 64 + 8);
    let mut line_start = true;
    let mut i = 0;
    while i < msg.len() {
        let b = msg[i];
        if line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if msg.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                line_start = true;
                continue;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                out.push(b);
                line_start = false;
            }
        }
        i += 1;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing() {
        assert_eq!(
            dot_stuff(b"a\r\n.b\r\n..c\r\n"),
            b"a\r\n..b\r\n...c\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b"no end"), b"no end\r\n.\r\n");
        assert_eq!(dot_stuff(b"bare\nlf\r\n.x"), b"bare\r\nlf\r\n..x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("bob@example.net"), "bob@example.net");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }
}

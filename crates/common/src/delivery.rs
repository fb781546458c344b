//! Delivery results as types, end to end (DESIGN §1 step 6): what one
//! attempt to deliver to one recipient came to — delivered, transient or
//! permanent; at which stage; the remote server's reply, parsed, when
//! there was one; Laneway's own reason when there was not; and the next
//! hop. The SMTP client and the next-hop lookup make them; the scheduler
//! stores them; DSNs, events, TLS reports, metrics and suppression read
//! them. Nothing downstream parses text.
//!
//! Two decisions live here and nowhere else: which enhanced status codes
//! mean that the *recipient* is bad ([`BounceClass::of_status`], the list
//! the suppression list and the bounce classes share), and whether a
//! result suppresses the recipient ([`Outcome::suppresses`]).

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use crate::bounce::{BounceClass, RECIPIENT_STATUSES};
use crate::reply::Reply;

/// An RFC 3463 enhanced status code `class.subject.detail`, e.g. 5.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status {
    /// 2 (success), 4 (persistent transient) or 5 (permanent).
    pub class: u8,
    /// The subject (RFC 3463 §3: 1 addressing, 2 mailbox, 3 mail system,
    /// 4 network and routing, 5 protocol, 6 content, 7 security).
    pub subject: u8,
    /// The detail.
    pub detail: u16,
}

impl Status {
    /// `class.subject.detail`.
    pub const fn new(class: u8, subject: u8, detail: u16) -> Status {
        Status {
            class,
            subject,
            detail,
        }
    }

    /// The status a reply is reported with: its enhanced code, else
    /// `x.0.0` of its basic code (RFC 3463 §3.1).
    pub fn of_reply(r: &Reply) -> Status {
        match r.esc {
            Some((c, s, d)) => Status::new(c, s, d),
            None => Status::new((r.code / 100).clamp(2, 5) as u8, 0, 0),
        }
    }

    /// Whether this is `x.0.0`, which says nothing about the cause.
    pub fn is_generic(self) -> bool {
        self.subject == 0 && self.detail == 0
    }

    /// Parses `x.y.z`.
    pub fn parse(s: &str) -> Option<Status> {
        let mut it = s.trim().splitn(3, '.');
        let class: u8 = it.next()?.parse().ok()?;
        let subject: u8 = it.next()?.parse().ok()?;
        let detail: u16 = it.next()?.parse().ok()?;
        (matches!(class, 2 | 4 | 5) && subject < 100 && detail < 1000)
            .then_some(Status::new(class, subject, detail))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        let s = String::deserialize(d)?;
        Status::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a status code: {s:?}")))
    }
}

/// Where in a delivery attempt the result was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Finding the next hop: MX, A/AAAA, routes, loops (RFC 5321 §5.1).
    Dns,
    /// Opening the TCP connection.
    Connect,
    /// STARTTLS, the handshake, certificates, DANE and MTA-STS checks.
    Tls,
    /// Session set-up: the greeting, EHLO/HELO and AUTH.
    Greeting,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA`/`BDAT`, the content and the reply to its end.
    Data,
    /// Laneway declined to send: the next hop lacks something the message
    /// needs (REQUIRETLS, SMTPUTF8, 8BITMIME, SIZE).
    Policy,
    /// The message was in the queue longer than `max_age`.
    Expiry,
    /// Trouble inside Laneway (spool, operator action).
    Local,
}

impl Stage {
    /// The lower-case name used in logs, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Greeting => "greeting",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::Policy => "policy",
            Stage::Expiry => "expiry",
            Stage::Local => "local",
        }
    }
}

/// Whether the recipient got the message, may get it later, or never will.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// The next hop took responsibility for it.
    Delivered,
    /// Try again later (4xx, network or DNS trouble).
    Transient,
    /// Never deliverable (5xx, expiry).
    Permanent,
}

/// The next hop an attempt reached: its name and the address connected to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHop {
    /// The host name (MX host, route host).
    pub host: String,
    /// The address and port connected to.
    pub addr: SocketAddr,
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]:{}", self.host, self.addr.ip(), self.addr.port())
    }
}

/// The result of one delivery attempt for one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Delivered, transient or permanent.
    pub disposition: Disposition,
    /// Where it was decided.
    pub stage: Stage,
    /// The RFC 3463 status it is reported with (the remote reply's own
    /// when there was one).
    pub status: Status,
    /// The remote server's reply, when the result is the remote's word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Reply>,
    /// Laneway's own description, when the result is Laneway's (a refused
    /// connection, an NXDOMAIN, an expiry), or what it adds to a remote
    /// reply (the last error of an expired message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The next hop, once a connection was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<NextHop>,
    /// For a delivery: the hop took the DSN request (it advertised DSN),
    /// so a SUCCESS notice is its job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dsn_passed: bool,
}

impl Outcome {
    /// What a remote reply means: 2xx delivered, 5xx permanent, anything
    /// else transient.
    pub fn remote(stage: Stage, reply: Reply, hop: Option<NextHop>) -> Outcome {
        let disposition = match reply.code / 100 {
            2 => Disposition::Delivered,
            5 => Disposition::Permanent,
            _ => Disposition::Transient,
        };
        Outcome {
            disposition,
            stage,
            status: Status::of_reply(&reply),
            remote: Some(reply),
            detail: None,
            hop,
            dsn_passed: false,
        }
    }

    /// A result Laneway decided itself.
    pub fn local(
        disposition: Disposition,
        stage: Stage,
        status: Status,
        detail: impl Into<String>,
    ) -> Outcome {
        Outcome {
            disposition,
            stage,
            status,
            remote: None,
            detail: Some(detail.into()),
            hop: None,
            dsn_passed: false,
        }
    }

    /// A transient local result.
    pub fn transient(stage: Stage, status: Status, detail: impl Into<String>) -> Outcome {
        Outcome::local(Disposition::Transient, stage, status, detail)
    }

    /// A permanent local result.
    pub fn permanent(stage: Stage, status: Status, detail: impl Into<String>) -> Outcome {
        Outcome::local(Disposition::Permanent, stage, status, detail)
    }

    /// The same result, at `hop`.
    pub fn at(mut self, hop: Option<NextHop>) -> Outcome {
        if self.hop.is_none() {
            self.hop = hop;
        }
        self
    }

    /// Whether the recipient got the message.
    pub fn is_delivered(&self) -> bool {
        self.disposition == Disposition::Delivered
    }

    /// Whether it is a permanent failure.
    pub fn is_permanent(&self) -> bool {
        self.disposition == Disposition::Permanent
    }

    /// Whether it is a transient failure.
    pub fn is_transient(&self) -> bool {
        self.disposition == Disposition::Transient
    }

    /// The expiry of a message whose last attempt ended in `last`: a
    /// permanent failure at [`Stage::Expiry`] (4.4.7, RFC 3463), carrying
    /// the last remote reply and reason for the DSN.
    pub fn expired(last: &Outcome) -> Outcome {
        Outcome {
            disposition: Disposition::Permanent,
            stage: Stage::Expiry,
            status: Status::new(4, 4, 7),
            remote: last.remote.clone(),
            detail: Some(format!("Delivery time expired; last error: {last}")),
            hop: last.hop.clone(),
            dsn_passed: false,
        }
    }

    /// The bounce class of a permanent failure: from its status code and,
    /// for a remote reply, the text table of [`crate::bounce`].
    pub fn bounce_class(&self) -> BounceClass {
        match self.stage {
            Stage::Expiry => BounceClass::Other,
            Stage::Tls => BounceClass::Tls,
            _ => match &self.remote {
                Some(r) => BounceClass::classify(self.status, &r.joined()),
                None => BounceClass::of_status(self.status),
            },
        }
    }

    /// Whether this result takes the recipient off the sender domain's
    /// list: only a permanent refusal in a *remote* reply to RCPT or to
    /// the end of data whose status says the address or its domain is bad
    /// ([`BounceClass::suppresses`]). Never for sender-side codes, policy,
    /// spam or reputation refusals, nor for anything Laneway decided
    /// itself (DNS, connection, TLS, expiry) — a DNS outage must not
    /// empty a mailing list.
    pub fn suppresses(&self) -> bool {
        self.is_permanent()
            && self.remote.is_some()
            && matches!(self.stage, Stage::Rcpt | Stage::Data)
            && self.bounce_class().suppresses()
    }
}

impl fmt::Display for Outcome {
    /// One line: the remote reply (`550 5.1.1 user unknown`) or the
    /// status and Laneway's reason (`4.4.1 connect to …: refused`), the
    /// reason added after a remote reply when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.remote, &self.detail) {
            (Some(r), None) => write!(f, "{r}"),
            (Some(_), Some(d)) if self.stage == Stage::Expiry => write!(f, "{} {d}", self.status),
            (Some(r), Some(d)) => write!(f, "{r} ({d})"),
            (None, Some(d)) => write!(f, "{} {d}", self.status),
            (None, None) => write!(f, "{}", self.status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(stage: Stage, code: u16, esc: (u8, u8, u16)) -> Outcome {
        Outcome::remote(stage, Reply::new(code, esc, "text"), None)
    }

    #[test]
    fn remote_replies_decide_their_disposition_and_status() {
        let o = remote(Stage::Rcpt, 550, (5, 1, 1));
        assert!(o.is_permanent());
        assert_eq!(o.status.to_string(), "5.1.1");
        assert_eq!(o.to_string(), "550 5.1.1 text");
        let bare = Outcome::remote(Stage::Data, Reply::bare(451, "later"), None);
        assert!(bare.is_transient());
        assert_eq!(bare.status, Status::new(4, 0, 0));
        assert!(remote(Stage::Data, 250, (2, 0, 0)).is_delivered());
    }

    #[test]
    fn only_remote_recipient_side_refusals_suppress() {
        // (stage, code, status, suppresses)
        let table = [
            (Stage::Rcpt, 550, (5, 1, 1), true),
            (Stage::Rcpt, 550, (5, 1, 2), true),
            (Stage::Rcpt, 553, (5, 1, 3), true),
            (Stage::Rcpt, 550, (5, 1, 6), true),
            (Stage::Rcpt, 550, (5, 1, 10), true),
            (Stage::Data, 550, (5, 2, 1), true),
            (Stage::Rcpt, 550, (5, 1, 7), false), // sender address
            (Stage::Rcpt, 550, (5, 1, 8), false), // sender domain
            (Stage::Rcpt, 550, (5, 7, 1), false), // policy
            (Stage::Data, 550, (5, 7, 26), false), // DMARC
            (Stage::Rcpt, 552, (5, 2, 2), false), // mailbox full
            (Stage::Rcpt, 450, (4, 1, 1), false), // transient
            (Stage::Mail, 550, (5, 1, 1), false), // about MAIL FROM
            (Stage::Greeting, 554, (5, 1, 1), false),
            (Stage::Rcpt, 550, (5, 4, 4), false),
        ];
        for (stage, code, esc, want) in table {
            assert_eq!(
                remote(stage, code, esc).suppresses(),
                want,
                "{stage:?} {code} {esc:?}"
            );
        }
        // Laneway's own verdicts never do, whatever their code
        for (stage, s) in [
            (Stage::Dns, Status::new(5, 1, 2)),
            (Stage::Dns, Status::new(5, 1, 10)),
            (Stage::Policy, Status::new(5, 1, 1)),
            (Stage::Tls, Status::new(5, 7, 10)),
        ] {
            assert!(!Outcome::permanent(stage, s, "x").suppresses(), "{stage:?}");
        }
        let expired = Outcome::expired(&remote(Stage::Rcpt, 450, (4, 1, 1)));
        assert!(expired.is_permanent() && !expired.suppresses());
        assert_eq!(expired.status.to_string(), "4.4.7");
        assert!(expired.to_string().contains("450 4.1.1 text"), "{expired}");
    }

    #[test]
    fn status_text_round_trips() {
        for s in ["5.1.1", "4.4.7", "5.1.10", "2.0.0"] {
            assert_eq!(Status::parse(s).unwrap().to_string(), s);
        }
        assert!(Status::parse("6.1.1").is_none());
        assert!(Status::parse("5.1").is_none());
        let o = Outcome::transient(Stage::Connect, Status::new(4, 4, 1), "refused");
        let json = serde_json::to_string(&o).unwrap();
        assert!(json.contains("\"status\":\"4.4.1\""), "{json}");
        assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
    }
}

//! Sender authentication as pure policy (DESIGN §1 step 3): from the
//! configuration and the clock the caller passes in, the decisions —
//! whether a sender may use an address, whether and with which keys a
//! message is signed, which bounce domain and VERP envelope sender each
//! recipient gets, what a returned message means, and what a permanent
//! failure does to the suppression list. Nothing here reads the clock,
//! the network or a store; [`crate::service`] does that around it.
//!
//! Only trusted submissions (trusted networks, authenticated users, API
//! keys) are signed or rewritten: otherwise anyone could obtain a valid
//! `d=example.com` signature by sending to a local domain.

use std::collections::{HashMap, HashSet};

use laneway_common::config::{Auth, Config, Unsubscribe};
use laneway_common::delivery::Outcome;
use laneway_common::domain::may_send_as;
use laneway_common::envelope::{Envelope, domain_of};
use laneway_common::events::EventType;
use laneway_common::headers;
use laneway_common::{IngestError, MessageId, Priority, RecipientVerdict, Reply};

use crate::report::{Bounced, Class, Returned};
use crate::store::{NewSuppression, Scope, Suppression, TokenInfo};
use crate::{BounceKey, Signer, Unsubscribed};

/// What the configuration says, prepared (keys loaded).
pub struct Policy {
    signer: Signer,
    key: Option<BounceKey>,
    /// sender domain → bounce domain
    bounce: HashMap<String, String>,
    /// bounce domain → sender domain that owns it
    owners: HashMap<String, String>,
    /// SMTP user → allowed sender domains
    users: HashMap<String, Vec<String>>,
    /// Sender domains whose mail is only relayed over verified TLS.
    require_tls: HashSet<String>,
    /// sender domain → its one-click unsubscribe settings
    unsubscribe: HashMap<String, Unsubscribe>,
    opts: Auth,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").finish_non_exhaustive()
    }
}

/// The outcome of DKIM signing at ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dkim {
    /// No key for the From domain (or not trusted mail).
    NotOurs,
    /// Signed.
    Signed,
    /// Signing failed; the message goes unsigned.
    Failed(String),
}

/// What ingest stores for a trusted submission.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The message to relay (signed when a key applies).
    pub message: Vec<u8>,
    /// The bounce domain of the envelope sender, if it has one.
    pub bounce_domain: Option<String>,
    /// The sender domain demands verified TLS for all its mail.
    pub require_tls: bool,
    /// What DKIM did.
    pub dkim: Dkim,
}

/// The transactions of one item: an envelope sender per group of
/// recipients, and the bounce tokens those senders stand for.
#[derive(Debug, Clone, Default)]
pub struct Transactions {
    /// Envelope sender and recipient indexes, one per transaction.
    pub senders: Vec<(String, Vec<usize>)>,
    /// Tokens to record: message, recipient index (none: whole message), what it stands for.
    pub tokens: Vec<(MessageId, Option<u16>, TokenInfo)>,
}

/// What a returned message said about one recipient of an original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedDecision {
    /// The original message.
    pub original: MessageId,
    /// Its lane.
    pub lane: u8,
    /// Its envelope sender (before the bounce rewrite).
    pub sender: String,
    /// The recipient the report is about.
    pub recipient: String,
    /// [`EventType::Returned`] (a bounce) or [`EventType::Complaint`].
    pub kind: EventType,
    /// The status and diagnostic the report gave.
    pub reply: String,
    /// The suppression it causes, if any.
    pub suppress: Option<NewSuppression>,
}

/// Warnings for check-config: bounce domains outside the sender's
/// organisational domain (SPF would then not align for DMARC).
pub fn alignment_warnings(c: &Config) -> Vec<String> {
    let org = |d: &str| {
        let labels: Vec<&str> = d.trim_end_matches('.').rsplit('.').take(2).collect();
        labels
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(".")
            .to_ascii_lowercase()
    };
    c.domains
        .iter()
        .filter_map(|d| {
            let b = d.bounce_domain.as_ref()?;
            (org(b) != org(&d.name)).then(|| {
                format!(
                    "[[domain]] {:?}: bounce_domain {b:?} is not under {:?}; SPF for the envelope sender will not align with From for DMARC",
                    d.name,
                    org(&d.name)
                )
            })
        })
        .collect()
}

impl Policy {
    /// Loads keys and secrets; every problem is reported.
    pub fn from_config(c: &Config) -> Result<Policy, Vec<String>> {
        let mut errors = Vec::new();
        let signer = Signer::load(&c.domains).unwrap_or_else(|e| {
            errors.extend(e);
            Signer::load(&[]).expect("an empty signer loads")
        });
        let needs_key = c.domains.iter().any(|d| d.bounce_domain.is_some())
            || c.auth.default_bounce_domain.is_some();
        let key = match &c.auth.bounce_secret_file {
            Some(f) => match BounceKey::from_file(f) {
                Ok(k) => Some(k),
                Err(e) => {
                    errors.push(format!("[auth] bounce_secret_file: {e}"));
                    None
                }
            },
            None if needs_key => {
                errors.push(
                    "[auth] bounce_secret_file is required when a [[domain]] has a bounce_domain"
                        .into(),
                );
                None
            }
            None => None,
        };
        let mut bounce = HashMap::new();
        let mut owners = HashMap::new();
        for d in &c.domains {
            let name = d.name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(b) = &d.bounce_domain {
                let b = b.trim_end_matches('.').to_ascii_lowercase();
                bounce.insert(name.clone(), b.clone());
                owners.insert(b, name);
            }
        }
        if let Some(b) = &c.auth.default_bounce_domain {
            owners
                .entry(b.to_ascii_lowercase())
                .or_insert_with(|| b.to_ascii_lowercase());
        }
        let require_tls = c
            .domains
            .iter()
            .filter(|d| d.require_tls)
            .map(|d| d.name.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let unsubscribe = c
            .domains
            .iter()
            .filter_map(|d| {
                let u = d.unsubscribe.clone()?;
                Some((d.name.trim_end_matches('.').to_ascii_lowercase(), u))
            })
            .collect();
        let users = c
            .smtp_users
            .iter()
            .filter_map(|u| u.allowed_from_domains.clone().map(|a| (u.name.clone(), a)))
            .collect();
        if errors.is_empty() {
            Ok(Policy {
                signer,
                key,
                bounce,
                owners,
                users,
                require_tls,
                unsubscribe,
                opts: c.auth.clone(),
            })
        } else {
            Err(errors)
        }
    }

    /// Lanes at or above this are transactional.
    pub fn transactional_min_lane(&self) -> Priority {
        self.opts.transactional_min_lane
    }

    fn bounce_domain_for(&self, sender_domain: &str) -> Option<&String> {
        self.bounce
            .get(sender_domain)
            .or(self.opts.default_bounce_domain.as_ref())
    }

    /// Whether `rcpt` is an address at one of our bounce domains.
    pub fn is_bounce_address(&self, rcpt: &str) -> bool {
        self.owners.contains_key(&domain_of(rcpt))
    }

    /// The RCPT verdict for an address at one of our bounce domains (none
    /// for other addresses): postmaster and valid tokens only.
    pub fn bounce_recipient(&self, rcpt: &str) -> Option<RecipientVerdict> {
        let rdomain = domain_of(rcpt);
        if !self.owners.contains_key(&rdomain) {
            return None;
        }
        let local = rcpt.rsplit_once('@').map(|(l, _)| l).unwrap_or(rcpt);
        if local.eq_ignore_ascii_case("postmaster") {
            return Some(RecipientVerdict::Accept);
        }
        // the mailto unsubscribe of a domain with `unsubscribe`
        if local.eq_ignore_ascii_case(crate::unsubscribe::MAILTO_LOCAL)
            && self
                .owners
                .get(&rdomain)
                .is_some_and(|o| self.unsubscribe.contains_key(o))
        {
            return Some(RecipientVerdict::Accept);
        }
        let ok = self
            .key
            .as_ref()
            .is_some_and(|k| k.decode(local, &rdomain).is_ok());
        Some(if ok {
            RecipientVerdict::Accept
        } else {
            RecipientVerdict::Refuse(Reply::new(550, (5, 1, 1), "No such bounce address"))
        })
    }

    /// Whether a suppression stops mail in `lane`: `All` always, `Bulk`
    /// below the transactional lanes.
    pub fn stops(&self, s: &Suppression, lane: Priority) -> bool {
        s.scope == Scope::All || lane < self.opts.transactional_min_lane
    }

    /// Whether [`Policy::prepare`] would DKIM-sign `message` (the one part
    /// of it that costs enough CPU to want a blocking thread).
    pub fn would_sign(&self, message: &[u8]) -> bool {
        headers::from_address(message).is_some_and(|f| self.signer.signs_for(&domain_of(&f)))
    }

    /// For a trusted submission: the sender's domains are checked for an
    /// authenticated user, the bounce domain and TLS demand recorded, and
    /// the message DKIM-signed at `now_secs`.
    pub fn prepare(
        &self,
        env: &Envelope,
        id: MessageId,
        lane: Priority,
        message: Vec<u8>,
        now_secs: u64,
    ) -> Result<Prepared, IngestError> {
        let from = headers::from_address(&message);
        if let Some(user) = &env.origin.auth_user {
            let allowed = self.users.get(user).map(Vec::as_slice);
            for (what, addr) in [
                ("From", from.as_deref()),
                ("MAIL FROM", Some(env.sender.as_str())),
            ] {
                let Some(a) = addr.filter(|a| !a.is_empty()) else {
                    continue;
                };
                if !may_send_as(allowed, a) {
                    return Err(IngestError::SenderNotAllowed(format!(
                        "{what} domain {} is not allowed for user {user}",
                        domain_of(a)
                    )));
                }
            }
        }
        let bounce_domain = (!env.sender.is_empty())
            .then(|| self.bounce_domain_for(&domain_of(&env.sender)).cloned())
            .flatten();
        // [[domain]] require_tls: the envelope sender's or the From domain
        // demands verified TLS for all its mail (RFC 8689 semantics).
        let require_tls = [Some(env.sender.as_str()), from.as_deref()]
            .into_iter()
            .flatten()
            .filter(|a| !a.is_empty())
            .any(|a| self.require_tls.contains(&domain_of(a)));
        let message = self.with_unsubscribe(env, id, lane, message);
        let Some(from_domain) = from.map(|f| domain_of(&f)) else {
            return Ok(Prepared {
                message,
                bounce_domain,
                require_tls,
                dkim: Dkim::NotOurs,
            });
        };
        let (message, dkim) = if !self.signer.signs_for(&from_domain) {
            (message, Dkim::NotOurs)
        } else {
            match self.signer.sign(&message, &from_domain, now_secs) {
                Ok(Some(signed)) => (signed, Dkim::Signed),
                Ok(None) => (message, Dkim::NotOurs),
                Err(e) => (message, Dkim::Failed(e.to_string())),
            }
        };
        Ok(Prepared {
            message,
            bounce_domain,
            require_tls,
            dkim,
        })
    }

    /// RFC 8058 one-click unsubscribe fields, added before signing (so the
    /// signature covers them) to mail of a sender domain with
    /// `unsubscribe`, in one of its lanes, to one recipient (the link names
    /// the recipient, and a message's header is the same for all of them),
    /// unless the message carries its own `List-Unsubscribe`.
    fn with_unsubscribe(
        &self,
        env: &Envelope,
        id: MessageId,
        lane: Priority,
        message: Vec<u8>,
    ) -> Vec<u8> {
        let sd = domain_of(&env.sender);
        let (Some(u), Some(key), [rcpt]) = (
            self.unsubscribe.get(&sd),
            &self.key,
            env.recipients.as_slice(),
        ) else {
            return message;
        };
        if !u.lanes.contains(lane)
            || headers::fields(&message)
                .iter()
                .any(|f| f.is("List-Unsubscribe"))
        {
            return message;
        }
        let Some(token) = key.unsubscribe_token(id, lane.get(), &env.sender, &rcpt.address) else {
            return message;
        };
        let bounce = self.bounce_domain_for(&sd).cloned();
        let mut out =
            crate::unsubscribe::header_fields(&u.base_url, &token, bounce.as_deref()).into_bytes();
        out.extend_from_slice(&message);
        out
    }

    /// What a one-click unsubscribe token stands for, if this node's key
    /// signed it and its sender domain still has `unsubscribe`; and the
    /// suppression it makes (bulk lanes only).
    pub fn unsubscribe(
        &self,
        token: &str,
        now_secs: u64,
    ) -> Option<(Unsubscribed, NewSuppression)> {
        let u = self.key.as_ref()?.open_unsubscribe(token)?;
        let sd = u.sender_domain();
        self.unsubscribe.get(&sd)?;
        let s = NewSuppression::new(
            sd,
            u.recipient.clone(),
            "unsubscribed (one-click, RFC 8058)",
            Scope::Bulk,
            now_secs,
        );
        Some((u, s))
    }

    /// The envelope senders of an item's transactions: with a bounce
    /// domain, a signed VERP address per recipient (`[auth] verp`) or one
    /// for the message; else the original sender. Tokens expire
    /// `bounce_window` after `now_ms`.
    pub fn transactions(
        &self,
        id: MessageId,
        lane: Priority,
        env: &Envelope,
        rcpts: &[(usize, String)],
        now_ms: u64,
    ) -> Transactions {
        let (Some(bd), Some(key)) = (&env.bounce_domain, &self.key) else {
            return Transactions {
                senders: vec![(env.sender.clone(), rcpts.iter().map(|(i, _)| *i).collect())],
                tokens: Vec::new(),
            };
        };
        let expires_at = now_ms + self.opts.bounce_window.as_millis() as u64;
        let sender_domain = domain_of(&env.sender);
        let info = |rcpt: &str| TokenInfo {
            recipient: rcpt.to_string(),
            sender: env.sender.clone(),
            sender_domain: sender_domain.clone(),
            lane: lane.get(),
            expires_at,
        };
        let mut t = Transactions::default();
        if self.opts.verp {
            for (i, addr) in rcpts {
                let idx = u16::try_from(*i).ok();
                t.tokens.push((id, idx, info(addr)));
                t.senders.push((key.address(id, idx, bd), vec![*i]));
            }
        } else {
            let first = rcpts.first().map(|(_, a)| a.as_str()).unwrap_or("");
            t.tokens.push((id, None, info(first)));
            t.senders.push((
                key.address(id, None, bd),
                rcpts.iter().map(|(i, _)| *i).collect(),
            ));
        }
        t
    }

    /// The bounce tokens a returned message points at: its recipients at
    /// our bounce domains, and the original envelope sender a complaint
    /// (ARF) quotes.
    pub fn returned_tokens(
        &self,
        env: &Envelope,
        report: Option<&Returned>,
    ) -> Vec<(MessageId, Option<u16>)> {
        let mut tokens = Vec::new();
        let mut decode = |addr: &str| {
            let d = domain_of(addr);
            let local = addr.rsplit_once('@').map(|(l, _)| l).unwrap_or(addr);
            if let Some(k) = &self.key
                && let Ok(t) = k.decode(local, &d)
                && !tokens.contains(&t)
            {
                tokens.push(t);
            }
        };
        for r in env
            .recipients
            .iter()
            .filter(|r| self.owners.contains_key(&r.domain()))
        {
            decode(&r.address);
        }
        if let Some(orig) = report.and_then(|r| r.original_mail_from.as_deref()) {
            decode(orig.trim_matches(['<', '>']));
        }
        tokens
    }

    /// Whether returned mail for the sender of `info` is forwarded to it
    /// (`[auth] forward_bounces`).
    pub fn forwards_bounces(&self) -> bool {
        self.opts.forward_bounces
    }

    /// What a returned message says about the original a token stood for,
    /// at `now_ms`: hard bounces suppress every lane, complaints the bulk
    /// lanes. An expired token, or mail that is no report, says nothing.
    pub fn returned(
        &self,
        original: MessageId,
        info: &TokenInfo,
        report: Option<&Returned>,
        now_ms: u64,
    ) -> Vec<ReturnedDecision> {
        if info.expires_at < now_ms {
            return Vec::new();
        }
        let Some(rep) = report else {
            return Vec::new();
        };
        let about: Vec<&Bounced> = rep
            .recipients
            .iter()
            .filter(|b| {
                b.address.eq_ignore_ascii_case(&info.recipient) || rep.recipients.len() == 1
            })
            .collect();
        let mut out = Vec::new();
        for b in about {
            let status = b.status.clone().unwrap_or_default();
            let reply = format!(
                "{} {}",
                status,
                b.diagnostic
                    .clone()
                    .unwrap_or_else(|| format!("{:?}", rep.kind))
            )
            .trim()
            .to_string();
            let (kind, word) = match b.class {
                Class::Complaint => (EventType::Complaint, "complained"),
                Class::Success => continue,
                _ => (EventType::Returned, "bounced"),
            };
            let scope = match b.class {
                c if c.suppresses() => Some(Scope::All),
                Class::Complaint => Some(Scope::Bulk),
                _ => None,
            };
            out.push(ReturnedDecision {
                original,
                lane: info.lane,
                sender: info.sender.clone(),
                recipient: info.recipient.clone(),
                kind,
                reply,
                suppress: scope.map(|scope| NewSuppression {
                    sender_domain: info.sender_domain.clone(),
                    address: info.recipient.clone(),
                    reason: format!("{word} {status}").trim().to_string(),
                    scope,
                    since: now_ms / 1000,
                }),
            });
        }
        out
    }

    /// The suppression a permanent delivery failure causes, if any (only
    /// what [`Outcome::suppresses`] allows; never for the null sender).
    pub fn delivery_failure(
        &self,
        sender: &str,
        rcpt: &str,
        outcome: &Outcome,
        now_secs: u64,
    ) -> Option<NewSuppression> {
        (!sender.is_empty() && outcome.suppresses()).then(|| NewSuppression {
            sender_domain: domain_of(sender),
            address: rcpt.to_string(),
            reason: format!("bounced {}", outcome.status),
            scope: Scope::All,
            since: now_secs,
        })
    }
}

#[cfg(test)]
mod tests;

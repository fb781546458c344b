//! Sender authentication for the running daemon: the [`Policy`] (swapped
//! on reload) with the stores behind their traits, the token writer and
//! the event sink. Ingest and the delivery hooks call it; every store call
//! is awaited off the async worker threads, every decision is the
//! policy's.

use std::sync::Arc;

use arc_swap::ArcSwap;
use laneway_common::delivery::Outcome;
use laneway_common::delivery::{BounceClass, Status};
use laneway_common::envelope::{Envelope, domain_of, now_ms};
use laneway_common::events::{Event, EventSink, EventType};
use laneway_common::{IngestError, MessageId, Priority, RecipientVerdict, Reply};

use crate::policy::{Dkim, Policy};
use crate::store::{NewSuppression, Scope, SuppressionStore, TokenStore};
use crate::writer::TokenWriter;

/// Sender authentication, running.
pub struct SenderAuth {
    policy: ArcSwap<Policy>,
    suppressions: Arc<dyn SuppressionStore>,
    tokens: Arc<dyn TokenStore>,
    writer: TokenWriter,
    events: Arc<dyn EventSink>,
    clock: fn() -> u64,
}

impl SenderAuth {
    /// Starts with `policy`, the stores and the event sink; spawns the
    /// token writer (flush it with [`SenderAuth::close`] on drain).
    pub fn new(
        policy: Policy,
        suppressions: Arc<dyn SuppressionStore>,
        tokens: Arc<dyn TokenStore>,
        events: Arc<dyn EventSink>,
    ) -> Arc<SenderAuth> {
        Arc::new(SenderAuth {
            policy: ArcSwap::from_pointee(policy),
            writer: TokenWriter::spawn(tokens.clone()),
            suppressions,
            tokens,
            events,
            clock: now_ms,
        })
    }

    /// Swaps in reloaded keys and settings.
    pub fn reload(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// The suppression store (for the admin API and metrics).
    pub fn suppressions(&self) -> &Arc<dyn SuppressionStore> {
        &self.suppressions
    }

    /// The token store.
    pub fn tokens(&self) -> &Arc<dyn TokenStore> {
        &self.tokens
    }

    /// Records the pending tokens and ends the writer (on drain).
    pub async fn close(&self) {
        self.writer.close().await;
    }

    /// Whether `rcpt` is an address at one of our bounce domains.
    pub fn is_bounce_address(&self, rcpt: &str) -> bool {
        self.policy.load().is_bounce_address(rcpt)
    }

    /// RCPT-time checks: bounce tokens at bounce domains, and recipients
    /// suppressed for every lane.
    pub async fn check_recipient(&self, sender: &str, rcpt: &str) -> RecipientVerdict {
        if let Some(v) = self.policy.load().bounce_recipient(rcpt) {
            return v;
        }
        if sender.is_empty() {
            return RecipientVerdict::Accept;
        }
        match self.suppressions.check(&domain_of(sender), rcpt).await {
            Ok(Some(s)) if s.scope == Scope::All => {
                // refused before the message has a queue id
                let why = format!("recipient suppressed ({})", s.reason);
                let e = Event::new(EventType::Suppressed, "", 0, sender, rcpt);
                self.record_event(e, &why);
                RecipientVerdict::Refuse(Reply::new(550, (5, 7, 1), why))
            }
            Ok(_) => RecipientVerdict::Accept,
            Err(e) => {
                tracing::error!(error = %e, "suppression lookup failed");
                RecipientVerdict::Accept
            }
        }
    }

    /// An event about mail that was not delivered but read or skipped here.
    fn event(&self, kind: EventType, id: MessageId, lane: u8, from: &str, rcpt: &str, why: &str) {
        self.record_event(Event::new(kind, id, lane, from, rcpt), why);
    }

    fn record_event(&self, mut e: Event, why: &str) {
        e.stage = Some("local".into());
        e.description = Some(why.to_string());
        if let Some(s) = why.split_whitespace().next().and_then(Status::parse) {
            e.status = Some(s.to_string());
            if !matches!(e.kind, EventType::Complaint | EventType::Suppressed) {
                e.bounce_class = Some(BounceClass::classify(s, why).as_str().to_string());
            }
        }
        self.events.record(e);
    }

    /// Whether [`SenderAuth::prepare`] would DKIM-sign `message`: only
    /// then is it worth a blocking thread (without a signature it is a
    /// header scan of microseconds, and the hop to the blocking pool and
    /// back costs more than that).
    pub fn would_sign(&self, message: &[u8]) -> bool {
        self.policy.load().would_sign(message)
    }

    /// For trusted submissions (CPU work when it signs: run it on a
    /// blocking thread then, see [`SenderAuth::would_sign`]):
    /// the sender checked, the bounce domain and TLS demand recorded in the
    /// envelope, the message DKIM-signed. Returns the message to store.
    pub fn prepare(
        &self,
        env: &mut Envelope,
        id: MessageId,
        lane: Priority,
        message: Vec<u8>,
    ) -> Result<Vec<u8>, IngestError> {
        let p = self
            .policy
            .load()
            .prepare(env, id, lane, message, (self.clock)() / 1000)?;
        if let Some(b) = p.bounce_domain {
            env.bounce_domain = Some(b);
        }
        env.require_tls |= p.require_tls;
        match &p.dkim {
            Dkim::Signed => {
                metrics::counter!(laneway_common::metrics::DKIM, "result" => "signed").increment(1)
            }
            Dkim::Failed(e) => {
                metrics::counter!(laneway_common::metrics::DKIM, "result" => "error").increment(1);
                tracing::error!(error = %e, "DKIM signing failed; the message goes unsigned");
            }
            Dkim::NotOurs => {}
        }
        Ok(p.message)
    }

    /// Recipients to drop at ingest: suppressed for every lane, or for bulk
    /// lanes when the message is in one. Each gets a `suppressed` event.
    pub async fn suppressed(
        &self,
        env: &Envelope,
        lane: Priority,
        id: MessageId,
    ) -> Vec<(String, String)> {
        if env.sender.is_empty() {
            return Vec::new();
        }
        let sd = domain_of(&env.sender);
        let mut out = Vec::new();
        for r in &env.recipients {
            let found = self.suppressions.check(&sd, &r.address).await;
            let p = self.policy.load();
            if let Ok(Some(s)) = found
                && p.stops(&s, lane)
            {
                let why = format!("suppressed ({})", s.reason);
                let mut e = Event::new(
                    EventType::Suppressed,
                    id,
                    lane.get(),
                    &env.sender,
                    &r.address,
                );
                e.metadata = env.metadata.clone();
                e.orcpt = r.orcpt.clone();
                self.record_event(e, &why);
                out.push((r.address.clone(), why));
            }
        }
        out
    }

    /// A one-click unsubscribe (`POST /u/<token>`): the recipient goes on
    /// the sender domain's list for bulk lanes, with an `unsubscribe` event
    /// in the message's history. `Ok(false)`: not a token of ours (or its
    /// domain no longer has `unsubscribe`). Idempotent: a second POST
    /// finds the entry there and changes nothing.
    pub async fn unsubscribe(&self, token: &str) -> Result<bool, crate::StoreError> {
        let now = (self.clock)();
        let Some((u, s)) = self.policy.load().unsubscribe(token, now / 1000) else {
            return Ok(false);
        };
        let e = self.suppressions.suppress(&s).await?;
        tracing::info!(rcpt = %s.address, sender_domain = %s.sender_domain, scope = ?e.scope, id = %u.message_id, "recipient unsubscribed (one-click)");
        let mut ev = Event::new(
            EventType::Unsubscribe,
            u.message_id,
            u.lane,
            &u.sender,
            &u.recipient,
        );
        ev.stage = Some("local".into());
        ev.description = Some(s.reason.clone());
        self.events.record(ev);
        Ok(true)
    }

    async fn record(&self, s: &NewSuppression, what: &str) {
        match self.suppressions.suppress(s).await {
            Ok(e) => {
                tracing::info!(rcpt = %s.address, sender_domain = %s.sender_domain, scope = ?e.scope, reason = %s.reason, "recipient suppressed {what}")
            }
            Err(e) => tracing::error!(error = %e, "cannot record the suppression"),
        }
    }

    /// Reads mail that came back to a bounce domain: records what it says
    /// about the original message's recipients and suppresses hard bounces
    /// (all lanes) and complaints (bulk lanes). Returns where to forward it
    /// (`[auth] forward_bounces`), or the store error when a token could
    /// not be looked up (a shared store that is away: the caller refuses
    /// the message for now, so that it comes back later).
    pub async fn returned(
        &self,
        env: &Envelope,
        message: &[u8],
        id: MessageId,
    ) -> Result<Vec<String>, crate::StoreError> {
        let mailto = env.recipients.iter().any(|r| {
            r.address
                .rsplit_once('@')
                .is_some_and(|(l, _)| l.eq_ignore_ascii_case(crate::unsubscribe::MAILTO_LOCAL))
        });
        if mailto {
            // RFC 2369 mailto unsubscribe: the token is in the subject
            let done = match crate::unsubscribe::token_of_mail(message) {
                Some(t) => self.unsubscribe(&t).await?,
                None => false,
            };
            tracing::info!(id = %id, from = %env.sender, unsubscribed = done, "mail to the unsubscribe address read");
        }
        let report = crate::report::parse(message);
        let tokens = self.policy.load().returned_tokens(env, report.as_ref());
        if !tokens.is_empty() {
            // a bounce can overtake the batch its token is in
            self.writer.flush().await;
        }
        let now = (self.clock)();
        let mut forward = Vec::new();
        for (orig_id, idx) in tokens {
            let info = match self.tokens.lookup(orig_id, idx).await {
                Ok(Some(i)) if i.expires_at >= now => i,
                Err(e) => {
                    tracing::warn!(id = %id, original = %orig_id, error = %e, "cannot look up a bounce token now; the returned mail is refused for now");
                    return Err(e);
                }
                _ => {
                    tracing::info!(id = %id, original = %orig_id, "returned mail for an unknown or expired bounce token");
                    continue;
                }
            };
            let p = self.policy.load();
            if p.forwards_bounces() && !forward.contains(&info.sender) {
                forward.push(info.sender.clone());
            }
            if report.is_none() {
                tracing::info!(id = %id, original = %orig_id, rcpt = %info.recipient, "mail to a bounce address that is not a report (auto-reply?)");
                continue;
            }
            for d in p.returned(orig_id, &info, report.as_ref(), now) {
                self.event(
                    d.kind,
                    d.original,
                    d.lane,
                    &d.sender,
                    &d.recipient,
                    &d.reply,
                );
                if let Some(s) = &d.suppress {
                    self.record(s, "after returned mail").await;
                }
            }
        }
        Ok(forward)
    }

    /// The policy in force (for decisions the caller acts on).
    pub fn policy(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.policy.load()
    }

    /// The clock, ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    /// Queues bounce tokens for the writer.
    pub fn record_tokens(&self, tokens: Vec<(MessageId, Option<u16>, crate::store::TokenInfo)>) {
        for (id, idx, info) in tokens {
            self.writer.record(id, idx, info);
        }
    }

    /// A recipient failed permanently: suppressed if the policy says so
    /// (in the background; the delivery goes on).
    pub fn failed(self: &Arc<Self>, sender: &str, rcpt: &str, outcome: &Outcome) {
        let p = self.policy.load();
        let Some(s) = p.delivery_failure(sender, rcpt, outcome, (self.clock)() / 1000) else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move { this.record(&s, "after a permanent failure").await });
    }
}

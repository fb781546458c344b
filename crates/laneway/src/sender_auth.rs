//! Sender authentication in the daemon (issue 5): what ingest does for
//! mail Laneway may speak for — the custom bounce domain recorded, the
//! message DKIM-signed — the VERP envelope senders outbound uses, the
//! bounce addresses and suppressions checked at RCPT, and returned mail
//! (DSNs, complaints) read and turned into suppressions.
//!
//! Only trusted submissions (trusted networks, authenticated users, API
//! keys) are signed or rewritten: otherwise anyone could obtain a valid
//! `d=example.com` signature by sending to a local domain.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use laneway_auth::{BounceKey, Class, Scope, Signer, Store, TokenInfo};
use laneway_common::config::{Auth, Config};
use laneway_common::envelope::{Envelope, domain_of, now_ms};
use laneway_common::headers;
use laneway_common::{IngestError, MessageId, Outcome, Priority, RecipientVerdict, Reply};
use laneway_outbound::Hooks;
use laneway_outbound::events::{DeliveryEvent, Events};
use tokio::sync::mpsc;

/// What the configuration says, prepared (keys loaded).
pub struct AuthState {
    signer: Signer,
    key: Option<BounceKey>,
    /// sender domain → bounce domain
    bounce: HashMap<String, String>,
    /// bounce domain → sender domain that owns it
    owners: HashMap<String, String>,
    /// SMTP user → allowed sender domains
    users: HashMap<String, Vec<String>>,
    /// Sender domains whose mail is only relayed over verified TLS.
    require_tls: std::collections::HashSet<String>,
    opts: Auth,
}

impl AuthState {
    /// Loads keys and secrets; every problem is reported.
    pub fn new(c: &Config) -> Result<AuthState, Vec<String>> {
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
        let users = c
            .smtp_users
            .iter()
            .filter_map(|u| u.allowed_from_domains.clone().map(|a| (u.name.clone(), a)))
            .collect();
        if errors.is_empty() {
            Ok(AuthState {
                signer,
                key,
                bounce,
                owners,
                users,
                require_tls,
                opts: c.auth.clone(),
            })
        } else {
            Err(errors)
        }
    }

    fn bounce_domain_for(&self, sender_domain: &str) -> Option<&String> {
        self.bounce
            .get(sender_domain)
            .or(self.opts.default_bounce_domain.as_ref())
    }
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

/// What the token writer is asked to do.
enum TokenMsg {
    /// Record a bounce token.
    Token(MessageId, Option<u16>, TokenInfo),
    /// Commit everything queued so far, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Sender authentication for the running daemon.
pub struct SenderAuth {
    state: ArcSwap<AuthState>,
    store: Store,
    tokens: mpsc::UnboundedSender<TokenMsg>,
    events: Arc<Events>,
}

impl SenderAuth {
    /// Starts with `state`, the store and the event log; spawns the
    /// background writer that records bounce tokens in batches.
    pub fn new(state: AuthState, store: Store, events: Arc<Events>) -> Arc<SenderAuth> {
        // Tokens are needed only once mail comes back, long after delivery:
        // they are committed in batches (one fsync for many), and a flush
        // makes sure nothing is pending before a returned message is read.
        let (tx, mut rx) = mpsc::unbounded_channel::<TokenMsg>();
        let s = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut waiting = Vec::new();
            while let Some(first) = rx.recv().await {
                let take = |m: TokenMsg, batch: &mut Vec<_>, waiting: &mut Vec<_>| match m {
                    TokenMsg::Token(id, i, t) => batch.push((id, i, t)),
                    TokenMsg::Flush(ack) => waiting.push(ack),
                };
                take(first, &mut batch, &mut waiting);
                // gather what arrives within a short window into one commit
                let until = tokio::time::Instant::now() + Duration::from_millis(50);
                while batch.len() < 5000 && waiting.is_empty() {
                    match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(m)) => take(m, &mut batch, &mut waiting),
                        _ => break,
                    }
                }
                if !batch.is_empty() {
                    let s = s.clone();
                    let b = std::mem::take(&mut batch);
                    let n = b.len();
                    match tokio::task::spawn_blocking(move || s.remember_many(&b)).await {
                        Ok(Ok(())) => tracing::debug!(tokens = n, "bounce tokens recorded"),
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, tokens = n, "cannot record bounce tokens")
                        }
                        Err(e) => tracing::error!(error = %e, "bounce token task failed"),
                    }
                }
                for ack in waiting.drain(..) {
                    let _ = ack.send(());
                }
            }
        });
        // Tokens older than the bounce window are of no use: purge hourly.
        let s = store.clone();
        tokio::spawn(async move {
            loop {
                let s2 = s.clone();
                match tokio::task::spawn_blocking(move || s2.purge_expired(now_ms())).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(tokens = n, "expired bounce tokens purged")
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "purging bounce tokens failed"),
                    _ => {}
                }
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
        Arc::new(SenderAuth {
            state: ArcSwap::from_pointee(state),
            store,
            tokens: tx,
            events,
        })
    }

    /// Swaps in reloaded keys and settings.
    pub fn reload(&self, state: AuthState) {
        self.state.store(Arc::new(state));
    }

    /// The store (suppressions, tokens).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether `rcpt` is an address at one of our bounce domains.
    pub fn is_bounce_address(&self, rcpt: &str) -> bool {
        self.state.load().owners.contains_key(&domain_of(rcpt))
    }

    /// RCPT-time checks: bounce tokens at bounce domains, and recipients
    /// suppressed for every lane.
    pub fn check_recipient(&self, sender: &str, rcpt: &str) -> RecipientVerdict {
        let st = self.state.load();
        let rdomain = domain_of(rcpt);
        if st.owners.contains_key(&rdomain) {
            let local = rcpt.rsplit_once('@').map(|(l, _)| l).unwrap_or(rcpt);
            if local.eq_ignore_ascii_case("postmaster") {
                return RecipientVerdict::Accept;
            }
            let ok = st
                .key
                .as_ref()
                .is_some_and(|k| k.decode(local, &rdomain).is_ok());
            return if ok {
                RecipientVerdict::Accept
            } else {
                RecipientVerdict::Refuse(Reply::new(550, (5, 1, 1), "No such bounce address"))
            };
        }
        if sender.is_empty() {
            return RecipientVerdict::Accept;
        }
        match self.store.check(&domain_of(sender), rcpt) {
            Ok(Some(s)) if s.scope == Scope::All => RecipientVerdict::Refuse(Reply::new(
                550,
                (5, 7, 1),
                format!("recipient suppressed ({})", s.reason),
            )),
            Ok(_) => RecipientVerdict::Accept,
            Err(e) => {
                tracing::error!(error = %e, "suppression lookup failed");
                RecipientVerdict::Accept
            }
        }
    }

    fn event(&self, id: &str, lane: u8, from: &str, rcpt: &str, result: &'static str, reply: &str) {
        self.events.record(&DeliveryEvent {
            ts_ms: now_ms(),
            id: id.to_string(),
            lane,
            from,
            rcpt,
            result,
            stage: "local",
            status: String::new(),
            reply,
            next_hop: None,
            tls: None,
            tls_policy: None,
            attempt: 0,
            queue_time_ms: 0,
            next_attempt_ms: None,
        });
    }

    /// For trusted submissions: the sender's domains are checked for an
    /// authenticated user, the bounce domain recorded and the message
    /// DKIM-signed. Returns the message to store.
    pub fn prepare(&self, env: &mut Envelope, message: Vec<u8>) -> Result<Vec<u8>, IngestError> {
        let st = self.state.load();
        let from = headers::from_address(&message);
        if let Some(user) = &env.origin.auth_user
            && let Some(allowed) = st.users.get(user)
        {
            for (what, addr) in [
                ("From", from.as_deref()),
                ("MAIL FROM", Some(env.sender.as_str())),
            ] {
                let Some(a) = addr.filter(|a| !a.is_empty()) else {
                    continue;
                };
                let d = domain_of(a);
                if !allowed.iter().any(|x| x.eq_ignore_ascii_case(&d)) {
                    return Err(IngestError::SenderNotAllowed(format!(
                        "{what} domain {d} is not allowed for user {user}"
                    )));
                }
            }
        }
        if !env.sender.is_empty()
            && let Some(b) = st.bounce_domain_for(&domain_of(&env.sender))
        {
            env.bounce_domain = Some(b.clone());
        }
        // [[domain]] require_tls: the envelope sender's or the From domain
        // demands verified TLS for all its mail (RFC 8689 semantics).
        if [Some(env.sender.as_str()), from.as_deref()]
            .into_iter()
            .flatten()
            .filter(|a| !a.is_empty())
            .any(|a| st.require_tls.contains(&domain_of(a).to_ascii_lowercase()))
        {
            env.require_tls = true;
        }
        let Some(from_domain) = from.map(|f| domain_of(&f)) else {
            return Ok(message);
        };
        if !st.signer.signs_for(&from_domain) {
            return Ok(message);
        }
        match st.signer.sign(&message, &from_domain, now_ms() / 1000) {
            Ok(Some(signed)) => {
                metrics::counter!(laneway_common::metrics::DKIM, "result" => "signed").increment(1);
                Ok(signed)
            }
            Ok(None) => Ok(message),
            Err(e) => {
                metrics::counter!(laneway_common::metrics::DKIM, "result" => "error").increment(1);
                tracing::error!(domain = %from_domain, error = %e, "DKIM signing failed; the message goes unsigned");
                Ok(message)
            }
        }
    }

    /// Recipients to drop at ingest: suppressed for every lane, or for bulk
    /// lanes when the message is in one. Each gets a `suppressed` event.
    pub fn suppressed(
        &self,
        env: &Envelope,
        lane: Priority,
        id: MessageId,
    ) -> Vec<(String, String)> {
        if env.sender.is_empty() {
            return Vec::new();
        }
        let st = self.state.load();
        let bulk = lane < st.opts.transactional_min_lane;
        let sd = domain_of(&env.sender);
        let mut out = Vec::new();
        for r in &env.recipients {
            if let Ok(Some(s)) = self.store.check(&sd, &r.address)
                && (s.scope == Scope::All || bulk)
            {
                let why = format!("suppressed ({})", s.reason);
                self.event(
                    &id.to_string(),
                    lane.get(),
                    &env.sender,
                    &r.address,
                    "suppressed",
                    &why,
                );
                out.push((r.address.clone(), why));
            }
        }
        out
    }

    /// Reads mail that came back to a bounce domain: records what it says
    /// about the original message's recipients and suppresses hard bounces
    /// (all lanes) and complaints (bulk lanes). Returns where to forward it
    /// (`[auth] forward_bounces`).
    pub fn returned(&self, env: &Envelope, message: &[u8], id: MessageId) -> Vec<String> {
        let st = self.state.load();
        let report = laneway_auth::report::parse(message);
        let mut tokens: Vec<(MessageId, Option<u16>)> = Vec::new();
        let mut decode = |addr: &str| {
            let d = domain_of(addr);
            let local = addr.rsplit_once('@').map(|(l, _)| l).unwrap_or(addr);
            if let Some(k) = &st.key
                && let Ok(t) = k.decode(local, &d)
                && !tokens.contains(&t)
            {
                tokens.push(t);
            }
        };
        for r in env
            .recipients
            .iter()
            .filter(|r| st.owners.contains_key(&r.domain()))
        {
            decode(&r.address);
        }
        if let Some(orig) = report
            .as_ref()
            .and_then(|r| r.original_mail_from.as_deref())
        {
            decode(orig.trim_matches(['<', '>']));
        }
        let mut forward = Vec::new();
        let now = now_ms();
        if !tokens.is_empty() {
            // a bounce can overtake the batch its token is in
            let (ack, done) = std::sync::mpsc::channel();
            if self.tokens.send(TokenMsg::Flush(ack)).is_ok() {
                let _ = done.recv_timeout(Duration::from_secs(10));
            }
        }
        for (orig_id, idx) in tokens {
            let info = match self.store.lookup(orig_id, idx) {
                Ok(Some(i)) if i.expires_at >= now => i,
                _ => {
                    tracing::info!(id = %id, original = %orig_id, "returned mail for an unknown or expired bounce token");
                    continue;
                }
            };
            if st.opts.forward_bounces && !forward.contains(&info.sender) {
                forward.push(info.sender.clone());
            }
            let Some(rep) = &report else {
                tracing::info!(id = %id, original = %orig_id, rcpt = %info.recipient, "mail to a bounce address that is not a report (auto-reply?)");
                continue;
            };
            let about: Vec<&laneway_auth::Bounced> = rep
                .recipients
                .iter()
                .filter(|b| {
                    b.address.eq_ignore_ascii_case(&info.recipient) || rep.recipients.len() == 1
                })
                .collect();
            for b in about {
                let status = b.status.clone().unwrap_or_default();
                let reply = format!(
                    "{} {}",
                    status,
                    b.diagnostic
                        .clone()
                        .unwrap_or_else(|| format!("{:?}", rep.kind))
                );
                let result = match b.class {
                    Class::Complaint => "complained",
                    Class::Success => continue,
                    _ => "bounced",
                };
                self.event(
                    &orig_id.to_string(),
                    info.lane,
                    &info.sender,
                    &info.recipient,
                    result,
                    reply.trim(),
                );
                let scope = match b.class {
                    c if c.suppresses() => Some(Scope::All),
                    Class::Complaint => Some(Scope::Bulk),
                    _ => None,
                };
                if let Some(scope) = scope {
                    let why = format!("{result} {}", status).trim().to_string();
                    match self.store.suppress(
                        &info.sender_domain,
                        &info.recipient,
                        &why,
                        scope,
                        now / 1000,
                    ) {
                        Ok(s) => {
                            tracing::info!(rcpt = %info.recipient, sender_domain = %info.sender_domain, scope = ?s.scope, "recipient suppressed")
                        }
                        Err(e) => tracing::error!(error = %e, "cannot record the suppression"),
                    }
                }
            }
        }
        forward
    }
}

impl Hooks for SenderAuth {
    fn transactions(
        &self,
        id: MessageId,
        lane: Priority,
        env: &Envelope,
        rcpts: &[(usize, String)],
    ) -> Vec<(String, Vec<usize>)> {
        let st = self.state.load();
        let (Some(bd), Some(key)) = (&env.bounce_domain, &st.key) else {
            return vec![(env.sender.clone(), rcpts.iter().map(|(i, _)| *i).collect())];
        };
        let expires_at = now_ms() + st.opts.bounce_window.as_millis() as u64;
        let sender_domain = domain_of(&env.sender);
        let info = |rcpt: &str| TokenInfo {
            recipient: rcpt.to_string(),
            sender: env.sender.clone(),
            sender_domain: sender_domain.clone(),
            lane: lane.get(),
            expires_at,
        };
        if st.opts.verp {
            rcpts
                .iter()
                .map(|(i, addr)| {
                    let idx = u16::try_from(*i).ok();
                    let _ = self.tokens.send(TokenMsg::Token(id, idx, info(addr)));
                    (key.address(id, idx, bd), vec![*i])
                })
                .collect()
        } else {
            let first = rcpts.first().map(|(_, a)| a.as_str()).unwrap_or("");
            let _ = self.tokens.send(TokenMsg::Token(id, None, info(first)));
            vec![(
                key.address(id, None, bd),
                rcpts.iter().map(|(i, _)| *i).collect(),
            )]
        }
    }

    fn failed(&self, sender: &str, rcpt: &str, _lane: Priority, outcome: &Outcome) {
        if sender.is_empty() {
            return;
        }
        if outcome.suppresses() {
            let status = outcome.status;
            let (store, sd, rcpt) = (self.store.clone(), domain_of(sender), rcpt.to_string());
            let why = format!("bounced {status}");
            tokio::task::spawn_blocking(move || {
                match store.suppress(&sd, &rcpt, &why, Scope::All, now_ms() / 1000) {
                    Ok(_) => {
                        tracing::info!(rcpt = %rcpt, sender_domain = %sd, reason = %why, "recipient suppressed after a permanent failure")
                    }
                    Err(e) => tracing::error!(error = %e, "cannot record the suppression"),
                }
            });
        }
    }
}

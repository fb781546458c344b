//! Delivering items over an open connection, and recording what became of
//! each recipient.
//!
//! Each transaction's outcomes are recorded — DSNs spooled, the state
//! journalled and fsynced with whatever else completes at the same time —
//! before the connection starts its next transaction: a crash can repeat
//! at most the one transaction a connection had in flight (at-least-once,
//! RFC 5321 §6.1), never a batch. Metrics, the delivery log and the
//! suppression hook read the same typed results.

use std::sync::Arc;

use laneway_common::config::AutomationAction;
use laneway_common::delivery::{Disposition, Outcome, Stage, Status};
use laneway_common::envelope::{BodyType, DsnRet};
use laneway_common::metrics;
use laneway_spool::queue::{AttemptVia, WorkItem};

use crate::client::Transaction;
use crate::connect::Open;
use crate::dispatch::Dispatcher;
use crate::policy::TlsPolicy;
use crate::resolve::Hop;
use crate::settings::{PoolSettings, Settings};

/// How an attempt went out, for its events.
pub(crate) type Via = AttemptVia;

impl Open {
    pub(crate) fn via(&self) -> Via {
        AttemptVia {
            tls: self.client.tls.clone(),
            tls_policy: Some(self.policy.as_str().to_string()),
            pool: Some(self.pool.clone()),
            source_ip: self.source.map(|s| s.to_string()),
        }
    }
}

/// What carrying one item came to.
pub(crate) struct Carried {
    /// Recipients delivered.
    pub(crate) delivered: usize,
    /// The server pushed back.
    pub(crate) throttled: bool,
    /// The connection can carry another item.
    pub(crate) reusable: bool,
}

impl Dispatcher {
    /// Sends one item over `open` (or, for a REQUIRETLS message the
    /// connection cannot carry, over a dedicated one).
    pub(crate) async fn deliver(
        self: &Arc<Self>,
        open: &mut Open,
        item: WorkItem,
        hop: &Hop,
        pool: &PoolSettings,
        settings: &Settings,
    ) -> Carried {
        let _activity = self.lifecycle.activity();
        let done = |delivered| Carried {
            delivered,
            throttled: false,
            reusable: true,
        };
        let (id, lane) = (item.id, item.lane);
        let spooled = match self.queue.store().fetch(id, lane, item.read_inline()).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let q = self.queue.store().quarantine(id, lane).await;
                tracing::error!(id = %id, error = %e, quarantine = ?q, "corrupt spool file quarantined");
                let o = Outcome::permanent(
                    Stage::Local,
                    Status::new(5, 3, 0),
                    format!("Message damaged in the spool ({e}); moved to quarantine"),
                );
                self.record_all(&item, o, None).await;
                return done(0);
            }
            Err(e) => {
                let o = Outcome::transient(
                    Stage::Local,
                    Status::new(4, 3, 0),
                    format!("Cannot read the message from the spool: {e}"),
                );
                self.record_all(&item, o, None).await;
                return done(0);
            }
        };
        let env = &spooled.envelope;
        let verified_requiretls = open.policy == TlsPolicy::Verify
            && open.client.tls.is_some()
            && open.client.caps.requiretls;
        if env.require_tls && !verified_requiretls {
            // RFC 8689: this message needs a connection of its own — TLS with
            // a verified certificate to a host that offers REQUIRETLS.
            return match self.open(hop, pool, settings, true).await {
                Ok(mut dedicated) => {
                    let via = dedicated.via();
                    let c = self.send_item(&mut dedicated, &item, &spooled, &via).await;
                    dedicated.client.quit().await;
                    done(c.delivered)
                }
                Err(e) => {
                    let o = if e.tls_refused {
                        Outcome::permanent(
                            Stage::Tls,
                            Status::new(5, 7, 10),
                            format!(
                                "REQUIRETLS needed: no host for {} offers STARTTLS with a verified certificate and REQUIRETLS (last: {})",
                                hop.hop.site, e.error
                            ),
                        )
                    } else {
                        e.error.outcome(Stage::Connect, None)
                    };
                    self.record_all(&item, o, None).await;
                    done(0)
                }
            };
        }
        let mut via = open.via();
        if env.require_tls {
            via.tls_policy = Some(TlsPolicy::Requiretls.as_str().to_string());
        }
        self.send_item(open, &item, &spooled, &via).await
    }

    /// Sends one spooled message over `open`, one transaction per envelope
    /// sender the hooks ask for, recording each transaction's outcomes
    /// before the next one starts.
    async fn send_item(
        &self,
        open: &mut Open,
        item: &WorkItem,
        spooled: &laneway_spool::Spooled,
        via: &Via,
    ) -> Carried {
        let env = &spooled.envelope;
        let message = spooled.message();
        let smtputf8 = env.smtputf8
            || !env.sender.is_ascii()
            || item.recipients.iter().any(|(_, a)| !a.is_ascii());
        let eightbit = env.body != BodyType::SevenBit || !message.is_ascii();
        let ret = env.ret.map(|r| match r {
            DsnRet::Full => "FULL",
            DsnRet::Hdrs => "HDRS",
        });
        let mut carried = Carried {
            delivered: 0,
            throttled: false,
            reusable: true,
        };
        for (from, idxs) in self
            .hooks
            .transactions(item.id, item.lane, env, &item.recipients)
        {
            let rcpts: Vec<_> = item
                .recipients
                .iter()
                .filter(|(i, _)| idxs.contains(i))
                .map(|(i, addr)| {
                    let r = env.recipients.get(*i);
                    (
                        *i,
                        addr.as_str(),
                        r.and_then(|r| r.notify.to_param()),
                        r.and_then(|r| r.orcpt.as_deref()),
                    )
                })
                .collect();
            let outcomes = if carried.reusable {
                let tx = Transaction {
                    from: &from,
                    rcpts,
                    message,
                    smtputf8,
                    eightbit,
                    ret,
                    envid: env.envid.as_deref(),
                    require_tls: env.require_tls,
                };
                let res = open.client.send(&tx).await;
                carried.throttled |= res.throttled;
                carried.reusable &= res.reusable;
                res.outcomes
            } else {
                let o = Outcome::transient(
                    Stage::Connect,
                    Status::new(4, 4, 2),
                    "Connection lost before this transaction",
                )
                .at(Some(open.client.hop()));
                rcpts.iter().map(|(i, ..)| (*i, o.clone())).collect()
            };
            carried.delivered += self.commit(item, outcomes, Some(via)).await;
        }
        self.queue.finish_item(item);
        carried
    }

    /// Records `outcomes` of (part of) `item` durably — with their events —
    /// then reports them (metrics, the suppression hook). Returns how many
    /// recipients were delivered.
    pub(crate) async fn commit(
        &self,
        item: &WorkItem,
        outcomes: Vec<(usize, Outcome)>,
        via: Option<&Via>,
    ) -> usize {
        let now = self.queue.now_ms();
        let mut outcomes = outcomes;
        if let Some(name) = self.shaping_name(&item.domain) {
            self.shape(&name, item, &mut outcomes);
        }
        let none = AttemptVia::default();
        let applied = self
            .queue
            .complete_via(item, outcomes, self.notifier.as_ref(), via.unwrap_or(&none))
            .await;
        let lane = metrics::lane(item.lane);
        let mut delivered = 0;
        for a in applied {
            let rcpt = item
                .recipients
                .iter()
                .find(|(i, _)| *i == a.index)
                .map(|(_, a)| a.as_str())
                .unwrap_or("");
            let o = &a.outcome;
            if o.is_delivered() {
                delivered += 1;
                ::metrics::counter!(metrics::DELIVERED, "lane" => lane).increment(1);
                ::metrics::histogram!(metrics::DELIVERY_LATENCY, "lane" => lane)
                    .record(now.saturating_sub(item.queued_at_ms) as f64 / 1000.0);
            } else if o.is_transient() {
                ::metrics::counter!(metrics::DEFERRED, "lane" => lane).increment(1);
            } else if a.expired {
                ::metrics::counter!(metrics::EXPIRED, "lane" => lane).increment(1);
            } else {
                ::metrics::counter!(metrics::BOUNCED, "lane" => lane, "class" => o.bounce_class().as_str())
                    .increment(1);
                self.hooks.failed(&item.sender, rcpt, item.lane, o);
            }
        }
        delivered
    }

    /// Shows the remote replies among `outcomes` to the automation rules
    /// of `name` (each distinct reply once); while a `bounce` rule holds
    /// the item's lane, a transient refusal it matched fails for good.
    fn shape(&self, name: &str, item: &WorkItem, outcomes: &mut [(usize, Outcome)]) {
        let mut seen: Vec<(String, Option<AutomationAction>)> = Vec::new();
        for (_, o) in outcomes.iter_mut() {
            let Some(reply) = o.remote.as_ref().filter(|_| !o.is_delivered()) else {
                continue;
            };
            let joined = reply.joined();
            let action = match seen.iter().find(|(j, _)| *j == joined) {
                Some((_, a)) => *a,
                None => {
                    let a = self.automation.observe(name, &joined);
                    seen.push((joined, a));
                    a
                }
            };
            if action == Some(AutomationAction::Bounce)
                && o.is_transient()
                && let Some(rule) = self.automation.bounces(name, item.lane)
            {
                // a policy failure of ours, not the remote's word on the
                // address: it never suppresses the recipient
                o.disposition = Disposition::Permanent;
                o.stage = Stage::Policy;
                o.status = Status::new(5, 7, 0);
                o.detail = Some(format!("bounced by shaping rule {} of {name}", rule.rule));
            }
        }
    }

    /// [`Self::commit`] with one outcome for every recipient of the item,
    /// which then ends.
    pub(crate) async fn record_all(&self, item: &WorkItem, o: Outcome, via: Option<&Via>) {
        let outcomes = item
            .recipients
            .iter()
            .map(|(i, _)| (*i, o.clone()))
            .collect();
        self.commit(item, outcomes, via).await;
        self.queue.finish_item(item);
    }

    /// [`Self::record_all`] in the background, for work that failed before
    /// any connection carried it (a failed lookup or connection): the
    /// caller goes on at once; shutdown waits for it.
    pub(crate) fn finish_all(self: &Arc<Self>, item: WorkItem, o: Outcome) {
        let this = self.clone();
        let activity = self.lifecycle.activity();
        tokio::spawn(async move {
            this.record_all(&item, o, None).await;
            drop(activity);
        });
    }
}

//! Automatic back-off (`[[provider.<name>.automation]]` of the shaping
//! files): every remote reply that is not a success is matched, as one
//! string ([`laneway_common::Reply::joined`]), against the rules of the
//! provider (or shaping domain) its site rolls up to. A rule that fires —
//! at the first match, or at the `trigger`th within its window — holds the
//! provider for its `duration`: the scheduler gets a
//! [`Restriction`] for the provider's name, so every site of the provider
//! suspends or throttles the rule's lanes (by default the bulk lanes),
//! while the urgent lanes keep their reserved connections and the normal
//! limits; a `bounce` rule fails the lanes' mail instead. When the hold
//! ends the lanes ramp back up.
//!
//! One rule holds a provider at a time: a match of another rule replaces
//! the one holding only if it holds more lanes, or the same lanes more
//! harshly (suspend over bounce over throttle); a rule that is already
//! holding is not extended by more matches (the replies of mail that was
//! in flight when it started).
//!
//! The active rules are kept in `<spool>/shaping-active.json` (written
//! durably at each start and end), so a restart keeps holding, and with
//! `[cluster]` they are shared ([`SharedShaping`]): a provider pushing
//! back at one node is held on every node. Each start and end is an event
//! of type `shaping`, and `laneway_shaping_rules_active` counts them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use laneway_common::admin::{ShapingActive, rfc3339};
use laneway_common::config::{AutomationAction, AutomationRule, DEFAULT_RAMP, Trigger};
use laneway_common::events::{Event, EventSink, EventType};
use laneway_common::{LaneSet, Priority, metrics};
use laneway_spool::queue::{Queue, RestrictMode, Restriction};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// The file the active rules are kept in, in the spool directory.
pub const FILE: &str = "shaping-active.json";

/// A rule holding a provider, as kept on disk and shared between nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveRule {
    /// Which rule of the provider, from 1.
    pub rule: usize,
    /// What it does.
    pub action: AutomationAction,
    /// The lanes it holds.
    pub lanes: LaneSet,
    /// Their rate while throttled, where the ramp starts.
    #[serde(default)]
    pub rate: Option<String>,
    /// While throttled: most regular connections.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Started, ms since the Unix epoch.
    pub started_ms: u64,
    /// The hold ends.
    pub until_ms: u64,
    /// The ramp ends.
    pub ramp_until_ms: u64,
    /// The reply that started it.
    pub reply: String,
    /// The node that saw it.
    #[serde(default)]
    pub node: String,
}

impl ActiveRule {
    fn holding(&self, now: u64) -> bool {
        now < self.until_ms
    }

    fn restriction(&self) -> Restriction {
        Restriction {
            lanes: self.lanes,
            mode: match self.action {
                AutomationAction::Suspend => RestrictMode::Suspend,
                AutomationAction::Throttle => RestrictMode::Throttle,
                AutomationAction::Bounce => RestrictMode::Bounce,
            },
            rate: self.rate.as_deref().and_then(|r| r.parse().ok()),
            max_connections: self.max_connections,
            until_ms: self.until_ms,
            ramp_until_ms: self.ramp_until_ms,
        }
    }

    /// Whether a rule starting now should take this one's place.
    fn yields_to(&self, action: AutomationAction, lanes: LaneSet, now: u64) -> bool {
        let rank = |a| match a {
            AutomationAction::Throttle => 0,
            AutomationAction::Bounce => 1,
            AutomationAction::Suspend => 2,
        };
        // only a rule that holds every lane this one holds may replace it
        // (else lanes it held would be let go at once, without a ramp)
        let covers = lanes.bits() & self.lanes.bits() == self.lanes.bits();
        !self.holding(now) || (covers && (lanes != self.lanes || rank(action) > rank(self.action)))
    }
}

/// Active rules shared with other nodes (`[cluster]`).
pub trait SharedShaping: Send + Sync {
    /// A rule started (`Some`), or ended early (`None`: cleared), here.
    fn publish(&self, provider: &str, rule: Option<&ActiveRule>);
}

/// One rule, ready to match.
struct Compiled {
    index: usize,
    set: regex::RegexSet,
    rule: AutomationRule,
    lanes: LaneSet,
}

#[derive(Default)]
struct State {
    active: BTreeMap<String, ActiveRule>,
    /// Recent match times of threshold rules, by provider and rule.
    hits: HashMap<(String, usize), VecDeque<u64>>,
    /// Providers whose rule's hold is over and was announced so.
    ended: std::collections::HashSet<String>,
}

/// The automation of one node.
pub struct Automation {
    rules: ArcSwap<BTreeMap<String, Vec<Compiled>>>,
    state: Mutex<State>,
    file: Option<PathBuf>,
    queue: Arc<Queue>,
    events: Arc<dyn EventSink>,
    node: OnceLock<String>,
    shared: OnceLock<Arc<dyn SharedShaping>>,
}

impl Automation {
    /// The automation of `settings`' shaping rules, with the active rules
    /// of `dir` (the spool directory; none kept without one) in force.
    pub fn new(
        queue: Arc<Queue>,
        events: Arc<dyn EventSink>,
        dir: Option<&Path>,
        settings: &Settings,
    ) -> Automation {
        let file = dir.map(|d| d.join(FILE));
        let active = file.as_deref().map(load).unwrap_or_default();
        let a = Automation {
            rules: ArcSwap::from_pointee(compile(settings)),
            state: Mutex::new(State {
                active,
                ..State::default()
            }),
            file,
            queue,
            events,
            node: OnceLock::new(),
            shared: OnceLock::new(),
        };
        let now = a.queue.now_ms();
        let mut st = a.lock();
        st.active.retain(|_, r| r.ramp_until_ms > now);
        st.ended = st
            .active
            .iter()
            .filter(|(_, r)| !r.holding(now))
            .map(|(n, _)| n.clone())
            .collect();
        for (name, r) in &st.active {
            tracing::info!(provider = %name, rule = r.rule, action = r.action.as_str(), remaining_s = r.until_ms.saturating_sub(now) / 1000, "shaping rule still in force after restart");
        }
        a.apply(&st);
        drop(st);
        a
    }

    /// The node name put on the rules this node starts.
    pub fn set_node(&self, node: &str) {
        let _ = self.node.set(node.to_string());
    }

    /// Where rules this node starts are shared.
    pub fn set_shared(&self, shared: Arc<dyn SharedShaping>) {
        let _ = self.shared.set(shared);
    }

    /// New rules (on reload); rules holding keep holding.
    pub fn reload(&self, settings: &Settings) {
        self.rules.store(Arc::new(compile(settings)));
        let st = self.lock();
        self.gauges(&st);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A remote reply from a site of `provider`: counts it against the
    /// rules it matches and starts the one that fires. Returns the action
    /// of the rule holding the provider if one of the matched rules is it.
    pub fn observe(&self, provider: &str, reply: &str) -> Option<AutomationAction> {
        let rules = self.rules.load();
        let list = rules.get(provider)?;
        let now = self.queue.now_ms();
        let mut st = self.lock();
        let mut holding = None;
        for c in list.iter().filter(|c| c.set.is_match(reply)) {
            let action = c.rule.action;
            ::metrics::counter!(metrics::SHAPING_MATCHES, "provider" => provider.to_string(), "action" => action.as_str())
                .increment(1);
            let hits = st.hits.entry((provider.to_string(), c.index)).or_default();
            if hit(hits, c.rule.trigger, now) {
                self.start(&mut st, provider, c, reply, now);
            }
            if st
                .active
                .get(provider)
                .is_some_and(|r| r.rule == c.index && r.holding(now))
            {
                holding = Some(action);
            }
        }
        holding
    }

    fn start(&self, st: &mut State, provider: &str, c: &Compiled, reply: &str, now: u64) {
        if let Some(cur) = st.active.get(provider)
            && (cur.rule == c.index && cur.holding(now)
                || !cur.yields_to(c.rule.action, c.lanes, now))
        {
            return;
        }
        let until_ms = now + c.rule.duration.as_millis() as u64;
        let rule = ActiveRule {
            rule: c.index,
            action: c.rule.action,
            lanes: c.lanes,
            rate: c.rule.rate.map(|r| r.to_string()),
            max_connections: c.rule.max_connections,
            started_ms: now,
            until_ms,
            ramp_until_ms: until_ms + c.rule.ramp.unwrap_or(DEFAULT_RAMP).as_millis() as u64,
            reply: reply.lines().next().unwrap_or("").to_string(),
            node: self.node.get().cloned().unwrap_or_default(),
        };
        tracing::warn!(provider = %provider, rule = rule.rule, action = rule.action.as_str(), lanes = %rule.lanes, duration = %humantime::format_duration(c.rule.duration), reply = %rule.reply, "shaping rule started");
        st.active.insert(provider.to_string(), rule.clone());
        st.ended.remove(provider);
        // kept on disk first: whoever sees the event (or another node the
        // rule) may rely on a restart still holding
        self.changed(st);
        self.event(provider, &rule, "started");
        if let Some(s) = self.shared.get() {
            s.publish(provider, Some(&rule));
        }
    }

    /// A rule another node started or cleared.
    pub fn apply_remote(&self, provider: &str, rule: Option<ActiveRule>) {
        let now = self.queue.now_ms();
        let mut st = self.lock();
        match rule {
            Some(r) if r.ramp_until_ms > now => {
                if st.active.get(provider) == Some(&r) {
                    return;
                }
                tracing::info!(provider = %provider, rule = r.rule, action = r.action.as_str(), node = %r.node, "shaping rule started on another node");
                st.active.insert(provider.to_string(), r);
                st.ended.remove(provider);
            }
            // over by now: every node sees that for itself
            Some(_) => return,
            None => {
                if st.active.remove(provider).is_none() {
                    return;
                }
                st.ended.remove(provider);
                tracing::info!(provider = %provider, "shaping rule cleared on another node");
            }
        }
        self.changed(&st);
    }

    /// Ends the holds whose time is over (their lanes ramp up from now) and
    /// forgets the rules whose ramp is over. Returns when to call again.
    pub fn tick(&self) -> Option<u64> {
        let now = self.queue.now_ms();
        let mut st = self.lock();
        let mut changed = false;
        let ended: Vec<String> = st
            .active
            .iter()
            .filter(|(_, r)| r.ramp_until_ms <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in ended {
            if let Some(r) = st.active.remove(&name)
                && !st.ended.remove(&name)
            {
                // its hold ended between two ticks (a ramp of 0 s, a late tick)
                self.event(&name, &r, "ended");
            }
            changed = true;
        }
        let over: Vec<String> = st
            .active
            .iter()
            .filter(|(n, r)| !r.holding(now) && !st.ended.contains(*n))
            .map(|(n, _)| n.clone())
            .collect();
        for name in over {
            let r = &st.active[&name];
            tracing::info!(provider = %name, rule = r.rule, action = r.action.as_str(), "shaping rule ended; the lanes ramp up");
            self.event(&name, r, "ended");
            st.ended.insert(name);
            changed = true;
        }
        if changed {
            self.changed(&st);
        }
        st.active
            .values()
            .map(|r| {
                if r.holding(now) {
                    r.until_ms
                } else {
                    r.ramp_until_ms
                }
            })
            .min()
    }

    /// `laneway shaping clear <provider>`: ends its rule now, ramp included.
    pub fn clear(&self, provider: &str) -> bool {
        let mut st = self.lock();
        let Some(r) = st.active.remove(provider) else {
            return false;
        };
        st.ended.remove(provider);
        tracing::info!(provider = %provider, rule = r.rule, action = r.action.as_str(), "shaping rule cleared by an operator");
        self.changed(&st);
        self.event(provider, &r, "cleared");
        if let Some(s) = self.shared.get() {
            s.publish(provider, None);
        }
        true
    }

    /// The rule failing `lane`'s mail to `provider` now, if any.
    pub fn bounces(&self, provider: &str, lane: Priority) -> Option<ActiveRule> {
        let now = self.queue.now_ms();
        self.lock()
            .active
            .get(provider)
            .filter(|r| {
                r.action == AutomationAction::Bounce && r.holding(now) && r.lanes.contains(lane)
            })
            .cloned()
    }

    /// The rules in force, for `laneway shaping show`.
    pub fn view(&self) -> Vec<ShapingActive> {
        let now = self.queue.now_ms();
        self.lock()
            .active
            .iter()
            .map(|(name, r)| {
                let (phase, end) = if r.holding(now) {
                    ("holding", r.until_ms)
                } else {
                    ("ramping", r.ramp_until_ms)
                };
                ShapingActive {
                    provider: name.clone(),
                    rule: r.rule,
                    action: r.action.as_str().to_string(),
                    lanes: r.lanes.to_string(),
                    phase: phase.to_string(),
                    remaining_seconds: end.saturating_sub(now).div_ceil(1000),
                    until: rfc3339(r.until_ms),
                    ramp_until: rfc3339(r.ramp_until_ms),
                    rate: r.rate.clone(),
                    max_connections: r.max_connections,
                    reply: r.reply.clone(),
                    node: r.node.clone(),
                }
            })
            .collect()
    }

    /// After any change: the scheduler, the file, the gauges.
    fn changed(&self, st: &State) {
        self.apply(st);
        if let Some(f) = &self.file
            && let Err(e) = save(f, &st.active)
        {
            tracing::error!(file = %f.display(), error = %e, "cannot keep the active shaping rules; a restart would forget them");
        }
    }

    fn apply(&self, st: &State) {
        let list = st
            .active
            .iter()
            .map(|(n, r)| (Arc::from(n.as_str()), r.restriction()))
            .collect();
        self.queue.set_restrictions(list);
        self.gauges(st);
    }

    /// `laneway_shaping_rules_active`, zero for every provider and action
    /// that has a rule.
    fn gauges(&self, st: &State) {
        let now = self.queue.now_ms();
        let mut counts: BTreeMap<(String, &'static str), f64> = BTreeMap::new();
        for (name, list) in self.rules.load().iter() {
            for c in list {
                counts.insert((name.clone(), c.rule.action.as_str()), 0.0);
            }
        }
        for (name, r) in st.active.iter().filter(|(_, r)| r.holding(now)) {
            *counts.entry((name.clone(), r.action.as_str())).or_default() += 1.0;
        }
        for ((name, action), n) in counts {
            // the matches counter exists from the start too (zero)
            ::metrics::counter!(metrics::SHAPING_MATCHES, "provider" => name.clone(), "action" => action)
                .increment(0);
            ::metrics::gauge!(metrics::SHAPING_ACTIVE, "provider" => name, "action" => action)
                .set(n);
        }
    }

    fn event(&self, provider: &str, r: &ActiveRule, what: &str) {
        let mut e = Event::new(EventType::Shaping, "", 0, "", "");
        e.action = Some(format!("{}_{what}", r.action.as_str()));
        e.provider = Some(provider.to_string());
        e.description = Some(format!(
            "rule {} of {provider}: {} lanes {} until {} (ramp until {}); reply: {}",
            r.rule,
            r.action.as_str(),
            r.lanes,
            rfc3339(r.until_ms),
            rfc3339(r.ramp_until_ms),
            r.reply
        ));
        self.events.record(e);
    }
}

/// Counts a match of a rule with `trigger`; whether the rule fires now.
fn hit(hits: &mut VecDeque<u64>, trigger: Trigger, now: u64) -> bool {
    match trigger {
        Trigger::Immediate => true,
        Trigger::Threshold { count, window } => {
            let since = now.saturating_sub(window.as_millis() as u64);
            while hits.front().is_some_and(|t| *t < since) {
                hits.pop_front();
            }
            hits.push_back(now);
            if hits.len() >= count as usize {
                hits.clear();
                true
            } else {
                false
            }
        }
    }
}

/// The rules of the shaping files, by provider (or domain) name.
fn compile(settings: &Settings) -> BTreeMap<String, Vec<Compiled>> {
    let entries = settings
        .shaping
        .providers
        .iter()
        .chain(settings.shaping.domains.iter());
    let mut out = BTreeMap::new();
    for (name, e) in entries.filter(|(_, e)| !e.automation.is_empty()) {
        let list = e
            .automation
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| {
                // checked when the configuration was loaded
                let set = regex::RegexSet::new(&rule.regex).ok()?;
                Some(Compiled {
                    index: i + 1,
                    set,
                    lanes: rule.lanes.unwrap_or(settings.bulk_lanes),
                    rule: rule.clone(),
                })
            })
            .collect();
        out.insert(name.clone(), list);
    }
    out
}

#[derive(Serialize, Deserialize)]
struct Kept {
    active: BTreeMap<String, ActiveRule>,
}

fn load(f: &Path) -> BTreeMap<String, ActiveRule> {
    match std::fs::read(f) {
        Ok(bytes) => match serde_json::from_slice::<Kept>(&bytes) {
            Ok(k) => k.active,
            Err(e) => {
                tracing::error!(file = %f.display(), error = %e, "active shaping rules unreadable; starting without them");
                BTreeMap::new()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => {
            tracing::error!(file = %f.display(), error = %e, "cannot read the active shaping rules");
            BTreeMap::new()
        }
    }
}

/// Writes the rules durably: a temporary file, fsync, rename, fsync of
/// the directory.
fn save(f: &Path, active: &BTreeMap<String, ActiveRule>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(&Kept {
        active: active.clone(),
    })
    .map_err(std::io::Error::other)?;
    let tmp = f.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, f)?;
    if let Some(dir) = f.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_threshold_fires_at_the_count_within_its_window() {
        let t = Trigger::Threshold {
            count: 3,
            window: Duration::from_secs(10),
        };
        let mut h = VecDeque::new();
        assert!(!hit(&mut h, t, 0));
        assert!(!hit(&mut h, t, 1_000));
        // the first match is out of the window by now
        assert!(!hit(&mut h, t, 10_500));
        assert!(hit(&mut h, t, 10_600));
        // counting starts again
        assert!(!hit(&mut h, t, 10_700));
        assert!(hit(&mut h, Trigger::Immediate, 0));
    }

    #[test]
    fn a_wider_or_harsher_rule_takes_over() {
        let bulk = LaneSet::from_bits(0b11111);
        let r = ActiveRule {
            rule: 1,
            action: AutomationAction::Throttle,
            lanes: bulk,
            rate: None,
            max_connections: Some(1),
            started_ms: 0,
            until_ms: 1000,
            ramp_until_ms: 2000,
            reply: String::new(),
            node: String::new(),
        };
        assert!(r.yields_to(AutomationAction::Suspend, bulk, 10));
        assert!(r.yields_to(AutomationAction::Throttle, LaneSet::ALL, 10));
        assert!(!r.yields_to(AutomationAction::Throttle, bulk, 10));
        assert!(!r.yields_to(AutomationAction::Suspend, LaneSet::from_bits(1), 10));
        // overlapping without covering: lanes 0-4 must not be let go
        assert!(!r.yields_to(
            AutomationAction::Suspend,
            LaneSet::from_bits(0b1111100000),
            10
        ));
        // once its hold is over anything may start
        assert!(r.yields_to(AutomationAction::Throttle, bulk, 1500));
    }
}

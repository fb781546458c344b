//! What `laneway top` shows and how its keys change it, apart from the
//! terminal, so that tests drive it without one.

use std::time::Instant;

use laneway_common::admin::{MessageSummary, QueueSummary, ShapingActive};
use laneway_common::domain::DomainPattern;

/// One reading of the daemon.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `GET /api/v1/queue`.
    pub queue: QueueSummary,
    /// The active shaping rules (`GET /api/v1/shaping`).
    pub rules: Vec<ShapingActive>,
    /// When it was read.
    pub at: Instant,
}

/// Which lanes the lower half is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every lane: the busiest destinations, holds and shaping rules.
    Overview,
    /// One lane: its destinations and its messages.
    Lane(u8),
}

/// A question on the last line, answered before anything is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Suspend mail to this domain pattern (editable; Enter confirms).
    Suspend(String),
    /// Resume this held pattern (y confirms).
    Resume(String),
}

/// What the loop has to do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing but redraw.
    None,
    /// Read the daemon again now (the view changed).
    Refresh,
    /// Leave.
    Quit,
    /// `POST /api/v1/destinations/{pattern}/suspend`.
    Suspend(String),
    /// `POST /api/v1/destinations/{pattern}/resume`.
    Resume(String),
}

/// A key, as far as `top` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Up,
    Down,
    Enter,
    Esc,
    Backspace,
}

/// A row that can be selected: a destination or a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A destination site (index into the summary's destinations).
    Destination(usize),
    /// A held domain pattern.
    Hold(String),
}

/// Everything on screen.
#[derive(Debug)]
pub struct App {
    /// The latest reading.
    pub now: Option<Snapshot>,
    /// In and out messages per second per lane, from the last two readings.
    pub rates: [Option<(f64, f64)>; 10],
    /// The lane view's messages.
    pub messages: Vec<MessageSummary>,
    pub view: View,
    /// Index into [`App::items`].
    pub selected: usize,
    pub prompt: Option<Prompt>,
    /// The outcome of the last action.
    pub status: Option<String>,
    /// Why the last reading failed (the screen keeps the one before).
    pub error: Option<String>,
}

impl Default for App {
    fn default() -> App {
        App {
            now: None,
            rates: [None; 10],
            messages: Vec::new(),
            view: View::Overview,
            selected: 0,
            prompt: None,
            status: None,
            error: None,
        }
    }
}

/// How many destinations the lower half lists.
pub const DESTINATIONS_SHOWN: usize = 7;

impl App {
    /// Takes a new reading; rates come from its difference to the last.
    pub fn update(&mut self, snap: Snapshot) {
        if let Some(prev) = &self.now {
            let dt = snap.at.duration_since(prev.at).as_secs_f64();
            for (i, r) in self.rates.iter_mut().enumerate() {
                let (Some(a), Some(b)) = (prev.queue.lanes.get(i), snap.queue.lanes.get(i)) else {
                    *r = None;
                    continue;
                };
                // counters going back mean the daemon restarted
                *r = (dt > 0.0 && b.in_total >= a.in_total && b.out_total >= a.out_total).then(
                    || {
                        (
                            (b.in_total - a.in_total) as f64 / dt,
                            (b.out_total - a.out_total) as f64 / dt,
                        )
                    },
                );
            }
        }
        self.now = Some(snap);
        self.error = None;
        let n = self.items().len();
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    /// Messages per second into and out of all lanes.
    pub fn total_rates(&self) -> Option<(f64, f64)> {
        self.rates
            .iter()
            .try_fold((0.0, 0.0), |(i, o), r| r.map(|(a, b)| (i + a, o + b)))
    }

    /// The destinations the lower half lists, busiest first: by ready and
    /// deferred work (in the lane view, those with ready work in that lane,
    /// by that work).
    pub fn destinations(&self) -> Vec<(usize, u64)> {
        let Some(s) = &self.now else {
            return Vec::new();
        };
        let mut d: Vec<(usize, u64)> = s
            .queue
            .destinations
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match self.view {
                View::Overview => Some((i, d.ready + d.deferred)),
                View::Lane(l) => d.lanes.get(&l.to_string()).map(|n| (i, *n)),
            })
            .collect();
        d.sort_by_key(|(i, n)| (std::cmp::Reverse(*n), *i));
        d.truncate(DESTINATIONS_SHOWN);
        d
    }

    /// What can be selected, in screen order: the destinations listed,
    /// then (in the overview) the holds.
    pub fn items(&self) -> Vec<Item> {
        let mut v: Vec<Item> = self
            .destinations()
            .into_iter()
            .map(|(i, _)| Item::Destination(i))
            .collect();
        if let (View::Overview, Some(s)) = (self.view, &self.now) {
            v.extend(s.queue.suspended_domains.iter().cloned().map(Item::Hold));
        }
        v
    }

    /// Handles one key.
    pub fn key(&mut self, k: Key) -> Action {
        self.status = None;
        if let Some(p) = self.prompt.take() {
            return self.answer(p, k);
        }
        match k {
            Key::Char('q') => Action::Quit,
            Key::Esc if self.view == View::Overview => Action::Quit,
            Key::Char(c @ '0'..='9') => {
                self.view = View::Lane(c as u8 - b'0');
                self.selected = 0;
                Action::Refresh
            }
            Key::Char('a') | Key::Esc => {
                self.view = View::Overview;
                self.selected = 0;
                Action::Refresh
            }
            Key::Up | Key::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                Action::None
            }
            Key::Down | Key::Char('j') => {
                let n = self.items().len();
                self.selected = (self.selected + 1).min(n.saturating_sub(1));
                Action::None
            }
            Key::Char('s') => {
                match self.items().get(self.selected) {
                    Some(Item::Destination(i)) => {
                        let d = &self
                            .now
                            .as_ref()
                            .expect("items come from a reading")
                            .queue
                            .destinations[*i];
                        let domain = d.domains.first().cloned().unwrap_or_default();
                        self.prompt = Some(Prompt::Suspend(domain));
                    }
                    Some(Item::Hold(p)) => self.status = Some(format!("{p} is held already")),
                    None => self.status = Some("no destination selected".into()),
                }
                Action::None
            }
            Key::Char('r') => {
                match self.items().get(self.selected) {
                    Some(Item::Hold(p)) => self.prompt = Some(Prompt::Resume(p.clone())),
                    Some(Item::Destination(i)) => match self.hold_of(*i) {
                        Some(p) => self.prompt = Some(Prompt::Resume(p)),
                        None => self.status = Some("no hold covers that destination".into()),
                    },
                    None => self.status = Some("nothing selected".into()),
                }
                Action::None
            }
            _ => Action::None,
        }
    }

    fn answer(&mut self, p: Prompt, k: Key) -> Action {
        match (p, k) {
            (Prompt::Suspend(_), Key::Esc) | (Prompt::Resume(_), Key::Esc | Key::Char('n')) => {
                self.status = Some("cancelled".into());
                Action::None
            }
            (Prompt::Suspend(d), Key::Enter) if !d.trim().is_empty() => {
                Action::Suspend(d.trim().to_string())
            }
            (Prompt::Resume(d), Key::Char('y')) => Action::Resume(d),
            (Prompt::Suspend(mut d), Key::Backspace) => {
                d.pop();
                self.prompt = Some(Prompt::Suspend(d));
                Action::None
            }
            (Prompt::Suspend(mut d), Key::Char(c)) if !c.is_whitespace() => {
                d.push(c);
                self.prompt = Some(Prompt::Suspend(d));
                Action::None
            }
            (p, _) => {
                self.prompt = Some(p);
                Action::None
            }
        }
    }

    /// The hold that covers one of destination `i`'s domains.
    fn hold_of(&self, i: usize) -> Option<String> {
        let s = self.now.as_ref()?;
        let d = s.queue.destinations.get(i)?;
        s.queue
            .suspended_domains
            .iter()
            .find(|h| {
                DomainPattern::parse(h)
                    .map(|p| d.domains.iter().any(|x| p.matches(x)))
                    .unwrap_or(false)
            })
            .cloned()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use laneway_common::admin::{DestinationSummary, LaneSummary};
    use std::time::Duration;

    pub fn snapshot(at: Instant, in_per_lane: u64) -> Snapshot {
        let lanes = (0..10)
            .map(|l| LaneSummary {
                lane: l,
                count: u64::from(l) * 2,
                deferred: u64::from(l),
                oldest_age_seconds: (l > 0).then_some(f64::from(l) * 61.0),
                ready: u64::from(l),
                in_total: in_per_lane * u64::from(l),
                out_total: in_per_lane,
            })
            .collect();
        let dest = |site: &str, ready: u64, domains: &[&str], lane: &str| DestinationSummary {
            site: site.into(),
            lanes: [(lane.to_string(), ready)].into_iter().collect(),
            ready,
            deferred: 1,
            connections: 1,
            health: "ok".into(),
            suspended: false,
            domains: domains.iter().map(|d| d.to_string()).collect(),
        };
        Snapshot {
            queue: QueueSummary {
                total: 90,
                ready: 45,
                deferred: 45,
                lanes,
                destinations: vec![
                    dest("mx.big.test", 30, &["big.test", "big2.test"], "0"),
                    dest("mx.small.test", 5, &["small.test"], "9"),
                ],
                suspended_domains: vec!["*.held.test".into()],
            },
            rules: Vec::new(),
            at,
        }
    }

    #[test]
    fn rates_are_differences_over_the_interval() {
        let t0 = Instant::now();
        let mut app = App::default();
        app.update(snapshot(t0, 10));
        assert_eq!(app.rates[3], None, "one reading has no rate");
        app.update(snapshot(t0 + Duration::from_secs(2), 30));
        // lane 3: in 30 -> 90 over 2 s; out 10 -> 30
        assert_eq!(app.rates[3], Some((30.0, 10.0)));
        let (i, o) = app.total_rates().unwrap();
        assert_eq!((i, o), ((0..10).map(|l| 10.0 * f64::from(l)).sum(), 100.0));
        // a restarted daemon counts from zero again: no rate, not a negative one
        app.update(snapshot(t0 + Duration::from_secs(3), 1));
        assert_eq!(app.rates[3], None);
    }

    #[test]
    fn suspend_asks_first_and_takes_the_edited_domain() {
        let mut app = App::default();
        app.update(snapshot(Instant::now(), 1));
        assert_eq!(app.key(Key::Char('s')), Action::None);
        assert_eq!(app.prompt, Some(Prompt::Suspend("big.test".into())));
        // edit it: big.test -> big2.test is "big" + "2.test"
        for _ in 0..5 {
            app.key(Key::Backspace);
        }
        for c in "2.test".chars() {
            app.key(Key::Char(c));
        }
        assert_eq!(app.key(Key::Enter), Action::Suspend("big2.test".into()));
        assert_eq!(app.prompt, None);
        // Esc cancels without acting
        app.key(Key::Char('s'));
        assert_eq!(app.key(Key::Esc), Action::None);
        assert_eq!(app.prompt, None);
        assert_eq!(app.status.as_deref(), Some("cancelled"));
    }

    #[test]
    fn resume_confirms_the_hold_selected() {
        let mut app = App::default();
        app.update(snapshot(Instant::now(), 1));
        // the items: two destinations, then the hold
        assert_eq!(app.items().len(), 3);
        app.key(Key::Down);
        app.key(Key::Down);
        app.key(Key::Down);
        assert_eq!(app.selected, 2, "the selection stops at the last item");
        app.key(Key::Char('r'));
        assert_eq!(app.prompt, Some(Prompt::Resume("*.held.test".into())));
        assert_eq!(app.key(Key::Char('x')), Action::None, "only y or n answer");
        assert_eq!(
            app.key(Key::Char('y')),
            Action::Resume("*.held.test".into())
        );
    }

    #[test]
    fn lane_view_lists_that_lanes_destinations_and_q_quits() {
        let mut app = App::default();
        app.update(snapshot(Instant::now(), 1));
        assert_eq!(app.key(Key::Char('9')), Action::Refresh);
        assert_eq!(app.view, View::Lane(9));
        assert_eq!(app.destinations(), vec![(1, 5)], "lane 9's ready work only");
        assert_eq!(
            app.items(),
            vec![Item::Destination(1)],
            "no holds in a lane view"
        );
        assert_eq!(app.key(Key::Esc), Action::Refresh);
        assert_eq!(app.view, View::Overview);
        assert_eq!(app.key(Key::Esc), Action::Quit);
        assert_eq!(app.key(Key::Char('q')), Action::Quit);
    }
}

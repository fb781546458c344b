//! Handing queued messages to another node (`laneway queue drain`): a
//! message is taken out of the schedule, sent whole — envelope, lane,
//! every recipient's state and attempt counts, and the message bytes as
//! spooled (already signed, `Received:` already added) — and removed here
//! only after the other node has spooled it; if that fails it goes back
//! into the schedule. The receiving side spools it with the same id (ids
//! are unique across nodes) and state; a message it already holds is
//! taken as already moved, so a repeated hand-over never makes two.

use laneway_common::admin::AdminError;
use laneway_common::{Envelope, MessageId, Priority};

use super::{Queue, schedule_domains};
use crate::state::MessageState;
use crate::store::Spooled;

/// A message taken out of the schedule for another node.
#[derive(Debug)]
pub struct Exported {
    /// Queue id (kept on the other node).
    pub id: MessageId,
    /// Lane.
    pub lane: Priority,
    /// Every recipient's state.
    pub state: MessageState,
    /// Envelope and bytes as spooled.
    pub spooled: Spooled,
}

impl Queue {
    /// The messages that could be handed over now (not being delivered or
    /// moved), in id order.
    pub fn exportable(&self, limit: usize) -> Vec<MessageId> {
        let st = self.lock();
        let mut ids: Vec<MessageId> = st
            .entries
            .iter()
            .filter(|(_, e)| !e.moving && !e.deleted && !e.rcpts.iter().any(|r| r.busy))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids.truncate(limit);
        ids
    }

    /// Takes a message out of the schedule and reads it for another node;
    /// [`AdminError::Busy`] while it is being delivered or moved.
    pub async fn export(&self, id: MessageId) -> Result<Exported, AdminError> {
        let (lane, state) = {
            let mut st = self.lock();
            let e = st.entries.get_mut(&id).ok_or(AdminError::NotFound(id))?;
            if e.rcpts.iter().any(|r| r.busy) || e.moving || e.deleted {
                return Err(AdminError::Busy(id));
            }
            e.moving = true;
            e.tickets.clear();
            let all: Vec<usize> = (0..e.rcpts.len()).collect();
            let mut state = MessageState::new(e.rcpts.len());
            e.delta(&all).apply(&mut state);
            let lane = e.lane;
            for s in st.sites.values_mut() {
                for set in s.lanes.iter_mut() {
                    set.retain(|(m, _)| *m != id);
                }
            }
            for d in st.domains.iter_mut() {
                d.waiting.retain(|m| *m != id);
            }
            (lane, state)
        };
        match self.store.fetch(id, lane, false).await {
            Ok(spooled) => Ok(Exported {
                id,
                lane,
                state,
                spooled,
            }),
            Err(e) => {
                self.put_back(id);
                Err(AdminError::Io(format!("reading {id}: {e}")))
            }
        }
    }

    /// The other node has the message: it goes from here (no DSN, no
    /// event: it was not delivered, it moved).
    pub async fn exported(&self, id: MessageId) {
        {
            let mut st = self.lock();
            let Some(e) = st.entries.get_mut(&id) else {
                return;
            };
            e.deleted = true;
        }
        self.persist(id, &[]).await;
    }

    /// The hand-over failed: the message is scheduled here again.
    pub fn put_back(&self, id: MessageId) {
        let now = self.clock.now_ms();
        let mut st = self.lock();
        if let Some(e) = st.entries.get_mut(&id) {
            e.moving = false;
        }
        schedule_domains(&mut st, id, now, &self.work);
        drop(st);
        self.changed.notify_one();
    }

    /// Spools a message another node handed over — same id, lane and
    /// state — durably, then schedules it. `Ok(false)` when it is here
    /// already (a repeated hand-over).
    pub async fn import(
        &self,
        id: MessageId,
        lane: Priority,
        envelope: Envelope,
        message: Vec<u8>,
        state: MessageState,
    ) -> Result<bool, AdminError> {
        if self.lock().entries.contains_key(&id) {
            return Ok(false);
        }
        if state.recipients.len() != envelope.recipients.len() {
            return Err(AdminError::Invalid(format!(
                "{} recipient states for {} recipients",
                state.recipients.len(),
                envelope.recipients.len()
            )));
        }
        let (store, env, st) = (self.store.clone(), envelope.clone(), state.clone());
        let size = message.len() as u64;
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            if store.contains(id) {
                return Ok(false);
            }
            // state first: a crash before the data leaves an orphan state
            // file that recovery removes, and the sender hands it over again
            store.put_state(id, lane, &st)?;
            store.put(id, lane, &env, &message)?;
            Ok(true)
        })
        .await
        .map_err(|e| AdminError::Io(e.to_string()))?
        .map_err(|e| AdminError::Io(format!("spooling {id}: {e}")))?;
        if !written {
            return Ok(false);
        }
        self.insert(id, lane, &envelope, &state, size);
        tracing::info!(id = %id, lane = %lane, rcpts = envelope.recipients.len(), "queued (handed over by another node)");
        Ok(true)
    }
}

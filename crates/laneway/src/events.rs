//! The daemon's event sink: every event is stamped and logged
//! (`laneway_common::events::Events`) and written into the spool journal —
//! with the change it reports when the scheduler commits one, else on its
//! own — from where each checkpoint moves it into the event log
//! (`laneway-events`) for the webhooks and the history.

use std::sync::Arc;

use laneway_common::events::{Event, EventSink, EventType, Events};
use laneway_common::{Envelope, MessageId, Priority, headers};
use laneway_spool::DiskStore;
use laneway_spool::journal::Record;

/// Stamps, logs and journals events.
pub struct JournalEvents {
    events: Events,
    store: Arc<DiskStore>,
}

impl JournalEvents {
    /// A sink writing into `store`'s journal.
    pub fn new(events: Events, store: Arc<DiskStore>) -> JournalEvents {
        JournalEvents { events, store }
    }
}

impl EventSink for JournalEvents {
    fn stamp_json(&self, e: Event) -> (Event, Vec<u8>) {
        self.events.stamp_json(e)
    }

    fn log(&self, e: &Event, json: &[u8]) {
        self.events.log(e, json)
    }

    fn record(&self, e: Event) {
        let json = self.events.encode(e);
        // durable with the journal's next group commit; nobody waits for it
        drop(self.store.record(vec![Record::Event(json)]));
    }
}

/// The `reception` events of a message just spooled: one per recipient.
pub fn receptions(
    id: MessageId,
    lane: Priority,
    env: &Envelope,
    message: &[u8],
    size: usize,
) -> Vec<Event> {
    let header = headers::fields(message)
        .iter()
        .find(|f| f.is("Message-ID"))
        .map(|f| f.text().trim().to_string());
    env.recipients
        .iter()
        .map(|r| {
            let mut e = Event::new(
                EventType::Reception,
                id,
                lane.get(),
                &env.sender,
                &r.address,
            );
            e.metadata = env.metadata.clone();
            e.orcpt = r.orcpt.clone();
            e.envid = env.envid.clone();
            e.door = Some(
                match env.origin.door {
                    laneway_common::envelope::Door::Smtp => "smtp",
                    laneway_common::envelope::Door::Api => "api",
                    laneway_common::envelope::Door::Local => "local",
                }
                .into(),
            );
            e.via = Some(env.origin.name.clone());
            e.size = Some(size as u64);
            e.message_id_header = header.clone();
            e
        })
        .collect()
}

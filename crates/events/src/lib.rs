//! The event stream (DESIGN §4b): what became of every message, as one
//! durable, ordered stream.
//!
//! Producers build [`laneway_common::events::Event`]s; the sink writes them
//! into the spool journal in the same group commit as the change they
//! report (an outcome, an acceptance), so `kill -9` loses neither. At each
//! journal checkpoint they move into the [`log::EventLog`] (redb), which
//! feeds the [`webhook`]s — signed, batched, at least once, in order — and
//! answers history queries (`laneway queue trace`, `GET /api/v1/events`)
//! for `[events] history`. The JSON form is `event.schema.json`.

pub mod log;
pub mod webhook;

pub use log::{EventLog, Filter, LogError, Raw, Stored};
pub use webhook::{Webhooks, signature, verify};

#[cfg(test)]
mod tests {
    use laneway_common::delivery::{NextHop, Outcome, Stage};
    use laneway_common::events::{Event, EventTls, EventType};
    use serde_json::Value;

    /// Every field an event can carry is in `event.schema.json`, the
    /// required ones are required, and every type is listed.
    #[test]
    fn the_schema_file_describes_the_events() {
        let schema: Value = serde_json::from_str(include_str!("../event.schema.json")).unwrap();
        let hop = NextHop {
            host: "mx.x.test".into(),
            addr: "127.0.0.1:25".parse().unwrap(),
        };
        let o = Outcome::remote(
            Stage::Rcpt,
            laneway_common::Reply::new(550, (5, 1, 1), "no"),
            Some(hop),
        );
        let mut e =
            Event::new(EventType::Bounce, "0000000000000001", 4, "a@x", "b@y").with_outcome(&o);
        e.orcpt = Some("rfc822;b@y".into());
        e.envid = Some("e1".into());
        e.attempt = Some(1);
        e.queue_time_ms = Some(5);
        e.tls = Some(EventTls {
            version: Some("TLSv1.3".into()),
            policy: "dane".into(),
        });
        e.pool = Some("default".into());
        e.source_ip = Some("127.0.0.1".into());
        e.next_attempt = Some("2026-01-01T00:00:00Z".into());
        e.door = Some("api".into());
        e.via = Some("k".into());
        e.size = Some(1);
        e.message_id_header = Some("<m@x>".into());
        e.action = Some("deleted".into());
        e.provider = Some("google".into());
        let v: Value = serde_json::from_slice(&e.to_json()).unwrap();
        let props = schema["properties"].as_object().unwrap();
        for k in v.as_object().unwrap().keys() {
            assert!(props.contains_key(k), "{k} is not in event.schema.json");
        }
        for k in schema["required"].as_array().unwrap() {
            assert!(
                v.get(k.as_str().unwrap()).is_some(),
                "{k} required but not always written"
            );
        }
        let listed: Vec<&str> = schema["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for t in EventType::ALL {
            assert!(listed.contains(&t.as_str()), "{t:?}");
        }
    }
}

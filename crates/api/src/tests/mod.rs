//! Router tests with a recording ingest and a scripted queue: the
//! fixtures here, the cases by endpoint group below.

mod admin;
mod errors;
mod routes;
mod submit;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use laneway_common::admin::*;
use laneway_common::config::{ApiKey, Scope};
use laneway_common::id::IdGenerator;
use laneway_common::ingest::{BoxFuture, PRIORITY_HEADER, decide_lane};
use laneway_common::{
    Accepted, Ingest, IngestError, MessageId, Priority, RecipientVerdict, Submission,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::keys::sha256_hex;

#[derive(Default)]
pub(crate) struct Recorder {
    got: Mutex<Vec<(Submission, Priority)>>,
    ids: IdGenerator,
}

impl Ingest for Recorder {
    fn admit(&self) -> Result<(), IngestError> {
        Ok(())
    }
    fn check_recipient<'a>(&'a self, _s: &'a str, r: &'a str) -> BoxFuture<'a, RecipientVerdict> {
        laneway_common::ingest::test_verdict(r)
    }
    fn submit(&self, s: Submission) -> BoxFuture<'_, Result<Accepted, IngestError>> {
        Box::pin(async move {
            let lane = decide_lane(&s.lane, &s.message)?;
            let mut s = s;
            s.message = laneway_common::headers::remove_fields(&s.message, PRIORITY_HEADER)
                .unwrap_or(s.message);
            self.got.lock().unwrap().push((s, lane));
            Ok(Accepted {
                id: self.ids.next_id(),
                lane,
                dropped: vec![],
            })
        })
    }
}

#[derive(Default)]
pub(crate) struct FakeAdmin {
    calls: Mutex<Vec<String>>,
}

impl Admin for FakeAdmin {
    fn summary(&self) -> QueueSummary {
        QueueSummary {
            total: 0,
            ready: 0,
            deferred: 0,
            lanes: vec![],
            destinations: vec![],
            suspended_domains: vec![],
        }
    }
    fn list(&self, f: &MessageFilter) -> (Vec<MessageSummary>, Option<MessageId>) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("list {:?} {:?}", f.lane, f.limit));
        (vec![], None)
    }
    fn detail(&self, id: MessageId) -> BoxFuture<'_, Result<MessageDetail, AdminError>> {
        Box::pin(async move { Err(AdminError::NotFound(id)) })
    }
    fn delete(&self, id: MessageId, bounce: bool) -> BoxFuture<'_, Result<(), AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delete {id} {bounce}"));
        Box::pin(async { Ok(()) })
    }
    fn retry(&self, id: MessageId) -> Result<(), AdminError> {
        self.calls.lock().unwrap().push(format!("retry {id}"));
        Ok(())
    }
    fn set_priority(
        &self,
        id: MessageId,
        lane: Priority,
    ) -> BoxFuture<'_, Result<MessageDetail, AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("priority {id} {lane}"));
        Box::pin(async move { Err(AdminError::Busy(id)) })
    }
    fn flush(&self) -> usize {
        3
    }
    fn suspend(&self, d: &str) -> Result<(), AdminError> {
        self.calls.lock().unwrap().push(format!("suspend {d}"));
        Ok(())
    }
    fn resume(&self, d: &str) -> Result<(), AdminError> {
        self.calls.lock().unwrap().push(format!("resume {d}"));
        Ok(())
    }
    fn suppressions<'a>(
        &'a self,
        sd: Option<&'a str>,
        limit: usize,
        _c: Option<&'a str>,
    ) -> BoxFuture<'a, Result<laneway_common::admin::SuppressionPage, AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("suppressions {sd:?} {limit}"));
        Box::pin(async { Ok((vec![], None)) })
    }
    fn suppress<'a>(
        &'a self,
        r: &'a SuppressRequest,
    ) -> BoxFuture<'a, Result<SuppressionEntry, AdminError>> {
        self.calls.lock().unwrap().push(format!(
            "suppress {} {} {} {}",
            r.address, r.sender_domain, r.reason, r.all_lanes
        ));
        let e = SuppressionEntry {
            address: r.address.clone(),
            sender_domain: r.sender_domain.clone(),
            reason: r.reason.clone(),
            lanes: if r.all_lanes {
                "all".into()
            } else {
                "bulk".into()
            },
            since: "2026-01-01T00:00:00Z".into(),
        };
        Box::pin(async move { Ok(e) })
    }
    fn unsuppress<'a>(
        &'a self,
        a: &'a str,
        sd: &'a str,
    ) -> BoxFuture<'a, Result<bool, AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("unsuppress {a} {sd}"));
        let found = a != "nobody@example.net";
        Box::pin(async move { Ok(found) })
    }
    fn cluster(&self) -> BoxFuture<'_, laneway_common::admin::ClusterView> {
        Box::pin(async {
            laneway_common::admin::ClusterView {
                node: "api.test".into(),
                clustered: false,
                connected: false,
                nodes: vec![],
            }
        })
    }
    fn import(
        &self,
        m: laneway_common::admin::ImportedMessage,
    ) -> BoxFuture<'_, Result<bool, AdminError>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("import {} {}", m.id, m.lane));
        Box::pin(async { Ok(true) })
    }
    fn drain(
        &self,
        r: laneway_common::admin::DrainRequest,
    ) -> Result<laneway_common::admin::DrainStatus, AdminError> {
        self.calls.lock().unwrap().push(format!("drain {}", r.to));
        Ok(laneway_common::admin::DrainStatus {
            state: "running".into(),
            to: Some(r.to),
            ..Default::default()
        })
    }
    fn drain_status(&self) -> laneway_common::admin::DrainStatus {
        laneway_common::admin::DrainStatus {
            state: "idle".into(),
            ..Default::default()
        }
    }
    fn events(
        &self,
        q: laneway_common::admin::EventQuery,
    ) -> BoxFuture<'_, Result<laneway_common::admin::EventPage, AdminError>> {
        self.calls.lock().unwrap().push(format!(
            "events {:?} {:?} {:?} {:?} {} {}",
            q.message_id.map(|i| i.to_string()),
            q.recipient,
            q.message_id_header,
            q.meta,
            q.after,
            q.limit
        ));
        Box::pin(async {
            Ok(laneway_common::admin::EventPage {
                events: vec![],
                next_cursor: None,
            })
        })
    }
}

pub(crate) struct T {
    pub(crate) ingest: Arc<Recorder>,
    pub(crate) admin: Arc<FakeAdmin>,
    pub(crate) router: axum::Router,
}

pub(crate) fn setup() -> T {
    let ingest = Arc::new(Recorder::default());
    let admin = Arc::new(FakeAdmin::default());
    let keys = Keys::new(&[
        ApiKey {
            name: "app".into(),
            sha256: sha256_hex("send-token"),
            scopes: vec![Scope::Send],
            allowed_from_domains: Some(vec!["example.com".into()]),
            default_priority: Some(Priority::new(6).unwrap()),
            rate: None,
        },
        ApiKey {
            name: "ops".into(),
            sha256: sha256_hex("admin-token"),
            scopes: vec![Scope::Admin, Scope::Send],
            allowed_from_domains: None,
            default_priority: None,
            rate: None,
        },
    ]);
    let api = Arc::new(Api {
        ingest: ingest.clone(),
        admin: admin.clone(),
        settings: ArcSwap::from_pointee(ApiSettings {
            keys,
            max_message_size: 64 * 1024,
            max_recipients: 5,
            default_priority: Priority::DEFAULT,
            hostname: "api.test".into(),
            shaping: Default::default(),
        }),
        metrics: None,
    });
    T {
        ingest,
        admin,
        router: router(api),
    }
}

/// `POST /api/v1/messages` with the send key.
pub(crate) async fn send(t: &T, extra: &[(&str, &str)], body: Value) -> (StatusCode, Value) {
    call(t, "POST", "/api/v1/messages", "send-token", extra, body).await
}

pub(crate) async fn call(
    t: &T,
    method: &str,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value) {
    let mut b = Request::builder().method(method).uri(path);
    if !token.is_empty() {
        b = b.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let res = t
        .router
        .clone()
        .oneshot(b.body(body).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(crate) fn msg(extra: Value) -> Value {
    let mut m = json!({"from": "app@example.com", "to": ["bob@example.net"], "subject": "hi", "text": "hello"});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

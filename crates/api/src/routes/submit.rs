//! `POST /api/v1/messages` (a message built from JSON fields with
//! mail-builder) and `POST /api/v1/messages/raw` (an RFC 5322 message as
//! given). Both answer `202` only once the message is on disk.
//!
//! The lane, in this order: the `priority` field; the `X-Priority-Queue`
//! request header (the two must agree when both are given); an
//! `X-Priority-Queue` header inside the message; the key's
//! `default_priority`; `[queue] default_priority`. The header never
//! reaches the recipient: ingest removes it.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use laneway_common::config::Scope;
use laneway_common::envelope::{Door, Envelope, Origin, Recipient, domain_of};
use laneway_common::headers;
use laneway_common::{LaneRequest, Priority, RecipientVerdict, Submission};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Ctx;
use crate::error::{ApiError, parse_json};
use crate::keys::Key;
use crate::validate;

/// Header fields the JSON builder sets itself; giving them in `headers` is refused.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "received",
];
/// Most custom headers per message.
const MAX_HEADERS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attachment {
    filename: String,
    content_type: String,
    /// base64
    content: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    from: String,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    priority: Option<Value>,
    /// RFC 8689 REQUIRETLS: relay only over verified TLS, else bounce.
    #[serde(default)]
    require_tls: bool,
    /// The application's own keys and values, in every event of the message.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRequest {
    envelope_from: String,
    recipients: Vec<String>,
    content: String,
    #[serde(default)]
    priority: Option<Value>,
    /// RFC 8689 REQUIRETLS: relay only over verified TLS, else bounce.
    #[serde(default)]
    require_tls: bool,
    /// The application's own keys and values, in every event of the message.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// Reads the body, refusing one over the size limit with 413.
async fn read_body(ctx: &Ctx, body: Body) -> Result<Bytes, ApiError> {
    let max = ctx.api.settings.load().max_message_size;
    // base64 attachments and JSON escaping make the body larger than the message
    let limit = (max as usize).saturating_mul(2).saturating_add(64 * 1024);
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request is larger than the limit ({max} bytes of message)"),
        )
    })
}

/// The lane request from the `priority` field, the HTTP header and the key.
fn lane_request(
    field: Option<&Value>,
    headers: &HeaderMap,
    key: &Key,
    default: Priority,
) -> Result<LaneRequest, ApiError> {
    let from_field = match field {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = v
                .as_i64()
                .filter(|_| v.is_i64() || v.is_u64())
                .ok_or_else(|| {
                    ApiError::field(
                        "invalid_priority",
                        "priority",
                        format!("priority must be an integer from 0 to 9, got {v}"),
                    )
                })?;
            Some(
                Priority::new(n)
                    .map_err(|e| ApiError::field("invalid_priority", "priority", e.to_string()))?,
            )
        }
    };
    let from_header = match headers.get("x-priority-queue") {
        None => None,
        Some(v) => {
            let s = v.to_str().map_err(|_| {
                ApiError::field(
                    "invalid_priority",
                    "X-Priority-Queue (HTTP header)",
                    "not valid text",
                )
            })?;
            Some(s.parse::<Priority>().map_err(|e| {
                ApiError::field(
                    "invalid_priority",
                    "X-Priority-Queue (HTTP header)",
                    e.to_string(),
                )
            })?)
        }
    };
    let explicit = match (from_field, from_header) {
        (Some(f), Some(h)) if f != h => {
            return Err(ApiError::field(
                "conflicting_priority",
                "priority",
                format!(
                    "the priority field ({f}) and the X-Priority-Queue HTTP header ({h}) disagree"
                ),
            ));
        }
        (Some(f), _) => Some((f, "priority field".to_string())),
        (None, Some(h)) => Some((h, "X-Priority-Queue HTTP header".to_string())),
        (None, None) => None,
    };
    Ok(LaneRequest {
        explicit,
        trust_header: true,
        fallback: key.default_priority.unwrap_or(default),
    })
}

/// Checks the recipients (syntax, count, suppression); returns the
/// accepted ones, the refused ones with reasons, and whether any needs SMTPUTF8.
async fn recipients(
    ctx: &Ctx,
    sender: &str,
    lists: &[(&str, &[String])],
) -> Result<(Vec<String>, Vec<Value>, bool), ApiError> {
    let max = ctx.api.settings.load().max_recipients;
    let mut all: Vec<String> = Vec::new();
    let mut utf8 = false;
    for (name, list) in lists {
        for (i, a) in list.iter().enumerate() {
            utf8 |= validate::address(&format!("{name}[{i}]"), a)?;
            if !all.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                all.push(a.clone());
            }
        }
    }
    if all.is_empty() {
        return Err(ApiError::field(
            "no_recipients",
            lists[0].0,
            "at least one recipient is required",
        ));
    }
    if all.len() > max {
        return Err(ApiError::field(
            "too_many_recipients",
            lists[0].0,
            format!("{} recipients; at most {max} per submission", all.len()),
        ));
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for a in all {
        match ctx.api.ingest.check_recipient(sender, &a).await {
            RecipientVerdict::Accept => accepted.push(a),
            RecipientVerdict::Refuse(r) => {
                rejected.push(json!({"recipient": a, "reason": r.to_string()}));
            }
        }
    }
    if accepted.is_empty() {
        return Err(ApiError::field(
            "no_valid_recipients",
            lists[0].0,
            format!("every recipient was refused: {}", Value::Array(rejected)),
        ));
    }
    Ok((accepted, rejected, utf8))
}

fn check_sender(key: &Key, field: &str, address: &str) -> Result<(), ApiError> {
    let d = domain_of(address);
    if !key.may_send_as(address) {
        return Err(ApiError {
            field: Some(field.to_string()),
            ..ApiError::new(
                StatusCode::FORBIDDEN,
                "sender_not_allowed",
                format!("API key {:?} may not send as {d}", key.name),
            )
        });
    }
    Ok(())
}

/// A checked submission, ready for ingest.
struct Prepared {
    sender: String,
    rcpts: Vec<String>,
    rejected: Vec<Value>,
    smtputf8: bool,
    message: Vec<u8>,
    lane: LaneRequest,
    require_tls: bool,
    metadata: BTreeMap<String, String>,
}

/// `400 invalid_metadata` when the metadata is over its bounds.
fn metadata(m: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    laneway_common::metadata::check(&m)
        .map_err(|e| ApiError::field("invalid_metadata", "metadata", e))?;
    Ok(m)
}

async fn submit(ctx: &Ctx, key: &Key, p: Prepared) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Prepared {
        sender,
        rcpts,
        rejected,
        smtputf8,
        message,
        lane,
        require_tls,
        metadata,
    } = p;
    // the request is valid: now whether we can take it (draining, disk space)
    ctx.api.ingest.admit()?;
    let origin = Origin {
        door: Door::Api,
        name: key.name.clone(),
        protocol: Some("HTTP".into()),
        trusted: true,
        ..Origin::local()
    };
    let mut envelope = Envelope::new(
        sender,
        rcpts.iter().map(|r| Recipient::new(r.clone())).collect(),
        origin,
    );
    envelope.smtputf8 = smtputf8;
    if !message.is_ascii() {
        envelope.body = laneway_common::envelope::BodyType::EightBitMime;
    }
    envelope.require_tls = require_tls;
    envelope.metadata = metadata;
    let acc = ctx
        .api
        .ingest
        .submit(Submission {
            envelope,
            message,
            lane,
        })
        .await?;
    let mut rejected = rejected;
    rejected.extend(
        acc.dropped
            .iter()
            .map(|(r, why)| json!({"recipient": r, "reason": why})),
    );
    let accepted: Vec<&String> = rcpts
        .iter()
        .filter(|r| !acc.dropped.iter().any(|(d, _)| d == *r))
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": acc.id,
            "priority": acc.lane.get(),
            "accepted": accepted,
            "rejected": rejected,
        })),
    ))
}

/// `413 too_large` for a message over `[api] max_message_size`.
fn within_size(message: &[u8], max: u64) -> Result<(), ApiError> {
    if message.len() as u64 > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the message is {} bytes; the limit is {max}", message.len()),
        ));
    }
    Ok(())
}

/// A submission request: the key may send, the body is read (within the
/// size limit) and parsed as `T`, the key's rate allows it — checked before
/// the handler runs, each failure a JSON error naming the problem.
pub(crate) struct Submit<T>(Ctx, Key, T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<Ctx> for Submit<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, ctx: &Ctx) -> Result<Self, ApiError> {
        let key = ctx.authorize(req.headers(), Scope::Send)?;
        let body = read_body(ctx, req.into_body()).await?;
        let parsed: T = parse_json(&body)?;
        ctx.api.settings.load().keys.rate_limit(&key)?;
        Ok(Submit(ctx.clone(), key, parsed))
    }
}

/// `POST /api/v1/messages`
pub async fn send(
    headers: HeaderMap,
    Submit(ctx, key, req): Submit<SendRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut utf8 = validate::address("from", &req.from)?;
    check_sender(&key, "from", &req.from)?;
    if let Some(r) = &req.reply_to {
        utf8 |= validate::address("reply_to", r)?;
    }
    if let Some(s) = &req.subject {
        validate::no_injection("subject", s)?;
    }
    if req.headers.len() > MAX_HEADERS {
        return Err(ApiError::field(
            "too_many_headers",
            "headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    for (k, v) in &req.headers {
        validate::header_name(k)?;
        validate::no_injection(&format!("headers.{k}"), v)?;
        if v.len() > 990 {
            return Err(ApiError::field(
                "header_too_long",
                format!("headers.{k}"),
                "a header value may be at most 990 octets",
            ));
        }
        if RESERVED.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(ApiError::field(
                "reserved_header",
                format!("headers.{k}"),
                format!("{k} is set from its own field, not from headers"),
            ));
        }
    }
    if req.text.is_none() && req.html.is_none() && req.attachments.is_empty() {
        return Err(ApiError::field(
            "empty_message",
            "text",
            "give text, html or attachments",
        ));
    }
    let (rcpts, rejected, rcpt_utf8) = recipients(
        &ctx,
        &req.from,
        &[("to", &req.to), ("cc", &req.cc), ("bcc", &req.bcc)],
    )
    .await?;
    let settings = ctx.api.settings.load();
    let lane = lane_request(
        req.priority.as_ref(),
        &headers,
        &key,
        settings.default_priority,
    )?;
    let mut b = MessageBuilder::new()
        .from(Address::new_address(None::<&str>, req.from.clone()))
        .message_id(format!(
            "{:032x}@{}",
            rand::random::<u128>(),
            settings.hostname
        ));
    if !req.to.is_empty() {
        b = b.to(req
            .to
            .iter()
            .map(|a| Address::new_address(None::<&str>, a.clone()))
            .collect::<Vec<_>>());
    }
    if !req.cc.is_empty() {
        b = b.cc(req
            .cc
            .iter()
            .map(|a| Address::new_address(None::<&str>, a.clone()))
            .collect::<Vec<_>>());
    }
    if let Some(r) = &req.reply_to {
        b = b.reply_to(Address::new_address(None::<&str>, r.clone()));
    }
    if let Some(s) = &req.subject {
        b = b.subject(s.clone());
    }
    for (k, v) in &req.headers {
        b = b.header(k.clone(), Raw::new(v.clone()));
    }
    if let Some(t) = &req.text {
        b = b.text_body(t.clone());
    }
    if let Some(h) = &req.html {
        b = b.html_body(h.clone());
    }
    for (i, a) in req.attachments.iter().enumerate() {
        validate::no_injection(&format!("attachments[{i}].filename"), &a.filename)?;
        validate::no_injection(&format!("attachments[{i}].content_type"), &a.content_type)?;
        if !a.content_type.contains('/') {
            return Err(ApiError::field(
                "invalid_content_type",
                format!("attachments[{i}].content_type"),
                "expected type/subtype",
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(a.content.as_bytes())
            .map_err(|e| {
                ApiError::field(
                    "invalid_base64",
                    format!("attachments[{i}].content"),
                    e.to_string(),
                )
            })?;
        b = b.attachment(a.content_type.clone(), a.filename.clone(), bytes);
    }
    let message = b.write_to_vec().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "build_failed",
            e.to_string(),
        )
    })?;
    within_size(&message, settings.max_message_size)?;
    drop(settings);
    let p = Prepared {
        sender: req.from.clone(),
        rcpts,
        rejected,
        smtputf8: utf8 || rcpt_utf8,
        message,
        lane,
        require_tls: req.require_tls,
        metadata: metadata(req.metadata)?,
    };
    submit(&ctx, &key, p).await
}

/// Normalises line ends to CRLF (a bare CR or LF becomes CRLF).
fn crlf(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() + b.len() / 32 + 2);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\r' if b.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            c => out.push(c),
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `POST /api/v1/messages/raw`
pub async fn raw(
    headers: HeaderMap,
    Submit(ctx, key, req): Submit<RawRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut utf8 = if req.envelope_from.is_empty() {
        false
    } else {
        validate::address("envelope_from", &req.envelope_from)?
    };
    if !req.envelope_from.is_empty() {
        check_sender(&key, "envelope_from", &req.envelope_from)?;
    }
    if req.content.contains('\0') {
        return Err(ApiError::field(
            "invalid_content",
            "content",
            "content must not contain NUL characters",
        ));
    }
    let mut message = crlf(&req.content);
    let fields = headers::fields(&message);
    if fields.is_empty() {
        return Err(ApiError::field(
            "invalid_content",
            "content",
            "content must start with RFC 5322 header fields",
        ));
    }
    if fields.len() > 1000 || headers::body_offset(&message) > 100 * 1024 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "header_too_large",
            "the header section is too large",
        ));
    }
    if let Some(from) = fields.iter().find(|f| f.is("From")) {
        let text = from.text();
        let addr = text
            .rsplit_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map(|(a, _)| a.to_string())
            .unwrap_or(text);
        check_sender(&key, "content (From:)", addr.trim())?;
    }
    let has = |n: &str| fields.iter().any(|f| f.is(n));
    let (need_date, need_id) = (!has("Date"), !has("Message-ID"));
    let settings = ctx.api.settings.load();
    if need_date || need_id {
        let mut head = String::new();
        if need_date {
            let now = laneway_common::envelope::now_ms() / 1000;
            head.push_str(&format!("Date: {}\r\n", headers::rfc5322_date(now as i64)));
        }
        if need_id {
            head.push_str(&format!(
                "Message-ID: <{:032x}@{}>\r\n",
                rand::random::<u128>(),
                settings.hostname
            ));
        }
        let mut m = head.into_bytes();
        m.extend_from_slice(&message);
        message = m;
    }
    within_size(&message, settings.max_message_size)?;
    let lane = lane_request(
        req.priority.as_ref(),
        &headers,
        &key,
        settings.default_priority,
    )?;
    drop(settings);
    let (rcpts, rejected, rcpt_utf8) =
        recipients(&ctx, &req.envelope_from, &[("recipients", &req.recipients)]).await?;
    utf8 |= rcpt_utf8;
    let p = Prepared {
        sender: req.envelope_from.clone(),
        rcpts,
        rejected,
        smtputf8: utf8,
        message,
        lane,
        require_tls: req.require_tls,
        metadata: metadata(req.metadata)?,
    };
    submit(&ctx, &key, p).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends() {
        assert_eq!(crlf("a\nb\r\nc\rd"), b"a\r\nb\r\nc\r\nd\r\n");
    }
}

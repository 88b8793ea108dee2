//! Webhooks: Files.com `webhook` folder behaviors, and what a delivery sends (issue 19).
//!
//! A [`Rule`] watches its folder and everything below it. Successful file operations (any
//! protocol, the console included) are matched against the rules when their audit batch is
//! written (`store::webhooks`), and each match becomes an outbox row in the same
//! transaction, keyed by `(event_key, rule)`: a journal replay adds nothing twice, and no
//! event acknowledged to a client can miss its webhook. The [`worker`] of each replica
//! claims due rows, sends them through the SSRF [`guard`] ([`send`]), and retries with
//! exponential back-off and jitter until `webhooks.max_age_seconds`, then marks them failed.
//!
//! This module is plain data and rules: the settings of a rule ([`WebhookValue`], validated
//! here so the API and the worker agree), which trigger an audit event is ([`trigger_of`]),
//! the payload ([`payload`]) and the request a delivery makes ([`Outgoing`]), signed with
//! `X-Filegate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.

/// URLs one webhook may have (the first primary, the rest backups tried in order).
pub const MAX_URLS: usize = 5;

pub mod guard;
pub mod send;
pub mod worker;

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};

use crate::audit::{Action, AuditEvent, Outcome};

/// Files.com's webhook triggers.
pub const TRIGGERS: [&str; 6] = ["create", "read", "update", "destroy", "move", "copy"];

/// A rule's settings that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

/// How a delivery is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// How a POST body is encoded (Files.com's `encoding`: `JSON`, or `RAW` = form data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Form,
}

/// The `value` of a `webhook` behavior (Files.com's fields).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookValue {
    /// The first is the primary, the rest backups tried in order within one attempt.
    pub urls: Vec<String>,
    pub method: Method,
    /// Empty: every trigger.
    pub triggers: Vec<String>,
    pub encoding: Encoding,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Extra payload fields (the event's own fields win).
    pub body: Map<String, Value>,
}

/// Headers a rule may not set (they carry the signature, or are the connection's).
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "x-filegate-signature",
    "x-filegate-timestamp",
    "x-filegate-delivery",
];

impl WebhookValue {
    /// Reads and checks a behavior `value` (an object, or a JSON-encoded string of one, as
    /// Files.com accepts). URLs must be http(s) without credentials; literal addresses are
    /// checked against the SSRF guard here too (host names are checked at send time).
    pub fn parse(value: &Value, allow: &guard::Allow) -> Result<WebhookValue, ValueError> {
        let bad = |m: &str| ValueError(m.to_owned());
        let parsed;
        let object = match value {
            Value::Object(o) => o,
            Value::String(s) => {
                parsed = serde_json::from_str::<Value>(s)
                    .map_err(|_| bad("value must be a JSON object"))?;
                parsed
                    .as_object()
                    .ok_or_else(|| bad("value must be a JSON object"))?
            }
            _ => return Err(bad("value must be a JSON object")),
        };
        for key in object.keys() {
            if ![
                "urls",
                "url",
                "method",
                "triggers",
                "encoding",
                "headers",
                "body",
                "secret",
                "signing_secret",
            ]
            .contains(&key.as_str())
            {
                let shown: String = key.chars().take(64).collect();
                return Err(ValueError(format!("value: unknown field {shown:?}")));
            }
        }
        let mut urls = Vec::new();
        match (object.get("urls"), object.get("url")) {
            (Some(Value::Array(list)), _) => {
                for u in list {
                    urls.push(
                        u.as_str()
                            .ok_or_else(|| bad("value.urls must be strings"))?,
                    );
                }
            }
            (Some(Value::String(u)), _) | (None, Some(Value::String(u))) => urls.push(u),
            (Some(_), _) => return Err(bad("value.urls must be a list of URLs")),
            _ => {}
        }
        if urls.is_empty() || urls.len() > MAX_URLS {
            return Err(bad("value.urls must hold 1 to 5 URLs"));
        }
        for u in &urls {
            guard::Target::parse(u)
                .and_then(|t| t.check_literal(allow))
                .map_err(|e| ValueError(format!("value.urls: {e}")))?;
        }
        let method = match object.get("method").and_then(Value::as_str) {
            None => Method::Post,
            Some(m) if m.eq_ignore_ascii_case("post") => Method::Post,
            Some(m) if m.eq_ignore_ascii_case("get") => Method::Get,
            Some(_) => return Err(bad("value.method must be GET or POST")),
        };
        let mut triggers = Vec::new();
        match object.get("triggers") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for t in list {
                    let t = t.as_str().unwrap_or_default().to_ascii_lowercase();
                    if !TRIGGERS.contains(&t.as_str()) {
                        return Err(bad(
                            "value.triggers must be among create, read, update, destroy, move, copy",
                        ));
                    }
                    if !triggers.contains(&t) {
                        triggers.push(t);
                    }
                }
            }
            Some(_) => return Err(bad("value.triggers must be a list")),
        }
        let encoding = match object.get("encoding").and_then(Value::as_str) {
            None => Encoding::Json,
            Some(e) if e.eq_ignore_ascii_case("json") => Encoding::Json,
            Some(e) if e.eq_ignore_ascii_case("raw") => Encoding::Form,
            Some(_) => {
                return Err(bad(
                    "value.encoding must be JSON or RAW (XML is not supported)",
                ));
            }
        };
        let mut headers = BTreeMap::new();
        match object.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (name, v) in h {
                    let v = v
                        .as_str()
                        .ok_or_else(|| bad("value.headers must map to strings"))?;
                    let lower = name.to_ascii_lowercase();
                    if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
                        || axum::http::HeaderValue::from_str(v).is_err()
                        || RESERVED_HEADERS.contains(&lower.as_str())
                    {
                        let shown: String = name.chars().take(64).collect();
                        return Err(ValueError(format!(
                            "value.headers: {shown:?} cannot be set"
                        )));
                    }
                    headers.insert(name.clone(), v.to_owned());
                }
            }
            Some(_) => return Err(bad("value.headers must be an object")),
        }
        let body = match object.get("body") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(b)) => b.clone(),
            Some(_) => return Err(bad("value.body must be an object")),
        };
        if serde_json::to_string(&body).map_or(0, |s| s.len()) > 16 * 1024 {
            return Err(bad("value.body is too large"));
        }
        Ok(WebhookValue {
            urls: urls.into_iter().map(str::to_owned).collect(),
            method,
            triggers,
            encoding,
            headers,
            body,
        })
    }

    /// The value as the API shows it (never the secret).
    pub fn to_json(&self) -> Value {
        json!({
            "urls": self.urls,
            "method": match self.method { Method::Get => "GET", Method::Post => "POST" },
            "triggers": self.triggers,
            "encoding": match self.encoding { Encoding::Json => "JSON", Encoding::Form => "RAW" },
            "headers": self.headers,
            "body": self.body,
        })
    }
}

/// One webhook rule, as the store keeps it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: i64,
    /// A site path: `/` or `/a/b`.
    pub path: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub value: WebhookValue,
    pub secret: String,
    /// Unix milliseconds; events older than the rule are not its business.
    pub created_ms: i64,
}

impl Rule {
    /// Whether `event` (whose trigger is `trigger`) is for this rule: in its folder (source
    /// or destination), among its triggers, and not older than the rule.
    pub fn matches(&self, event: &AuditEvent, trigger: &str) -> bool {
        if event.at_ms < self.created_ms {
            return false;
        }
        if !self.value.triggers.is_empty() && !self.value.triggers.iter().any(|t| t == trigger) {
            return false;
        }
        [event.path.as_deref(), event.destination.as_deref()]
            .into_iter()
            .flatten()
            .any(|p| beneath(&self.path, p))
    }
}

/// `path` is `folder` or inside it (site paths).
pub fn beneath(folder: &str, path: &str) -> bool {
    folder == "/"
        || path == folder
        || (path.starts_with(folder) && path.as_bytes().get(folder.len()) == Some(&b'/'))
}

/// The Files.com trigger of a successful file operation (`None`: not a webhook event).
pub fn trigger_of(event: &AuditEvent) -> Option<&'static str> {
    if event.outcome != Outcome::Ok {
        return None;
    }
    Some(match event.action {
        Action::Upload | Action::Mkdir => "create",
        Action::Download => "read",
        Action::Delete | Action::Rmdir => "destroy",
        Action::Rename => "move",
        Action::Copy => "copy",
        _ => return None,
    })
}

/// What a delivery says about `event` (Files.com's field names; paths without the leading
/// slash, as Files.com writes them).
pub fn payload(event: &AuditEvent, trigger: &str) -> Value {
    let folder = matches!(event.action, Action::Mkdir | Action::Rmdir);
    let rel = |p: &Option<String>| p.as_deref().map(|p| p.trim_start_matches('/').to_owned());
    json!({
        "action": trigger,
        "type": if folder { "directory" } else { "file" },
        "path": rel(&event.path),
        "destination": rel(&event.destination),
        "size": event.bytes,
        "username": event.username,
        "user_id": event.user_id,
        "api_key_id": event.key_id,
        "interface": event.protocol.as_str(),
        "remote_ip": event.remote_addr,
        "at": chrono::DateTime::from_timestamp_millis(event.at_ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        "event_key": event.event_key,
    })
}

/// `sha256=<hex>` of HMAC-SHA256 under `secret` over `<timestamp>.<body>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One HTTP request a delivery makes (before its URL is resolved).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    /// For GET: the payload in the query string.
    pub url: String,
    pub body: Vec<u8>,
    pub content_type: Option<&'static str>,
    /// The rule's headers, then the signature, timestamp and delivery id.
    pub headers: Vec<(String, String)>,
}

/// The request for `payload` to `url` under `rule`'s settings, signed at `timestamp`
/// (Unix seconds). For GET the signed text is the query string.
pub fn outgoing(
    value: &WebhookValue,
    secret: &str,
    url: &str,
    payload: &Value,
    delivery_id: &str,
    timestamp: i64,
) -> Outgoing {
    let mut fields = value.body.clone();
    if let Value::Object(p) = payload {
        for (k, v) in p {
            fields.insert(k.clone(), v.clone());
        }
    }
    let form = || {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &fields {
            match v {
                Value::Null => {}
                Value::String(s) => {
                    ser.append_pair(k, s);
                }
                other => {
                    ser.append_pair(k, &other.to_string());
                }
            }
        }
        ser.finish()
    };
    let (url, body, content_type) = match (value.method, value.encoding) {
        (Method::Get, _) => {
            let query = form();
            let sep = if url.contains('?') { '&' } else { '?' };
            (format!("{url}{sep}{query}"), query.into_bytes(), None)
        }
        (Method::Post, Encoding::Json) => (
            url.to_owned(),
            serde_json::to_vec(&Value::Object(fields)).unwrap_or_default(),
            Some("application/json"),
        ),
        (Method::Post, Encoding::Form) => (
            url.to_owned(),
            form().into_bytes(),
            Some("application/x-www-form-urlencoded"),
        ),
    };
    let mut headers: Vec<(String, String)> = value
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers.push((
        "X-Filegate-Signature".into(),
        sign(secret, timestamp, &body),
    ));
    headers.push(("X-Filegate-Timestamp".into(), timestamp.to_string()));
    headers.push(("X-Filegate-Delivery".into(), delivery_id.to_owned()));
    let body = if value.method == Method::Get {
        Vec::new()
    } else {
        body
    };
    Outgoing {
        method: value.method,
        url,
        body,
        content_type,
        headers,
    }
}

#[cfg(test)]
mod tests;

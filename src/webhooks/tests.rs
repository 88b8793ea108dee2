use serde_json::json;

use super::guard::Allow;
use super::*;
use crate::identity::{Principal, Protocol};

fn value(v: serde_json::Value) -> Result<WebhookValue, ValueError> {
    WebhookValue::parse(&v, &Allow(vec!["127.0.0.0/8".parse().unwrap()]))
}

fn rule(path: &str, triggers: &[&str]) -> Rule {
    Rule {
        id: 1,
        path: path.into(),
        name: None,
        description: None,
        value: value(json!({"urls": ["http://127.0.0.1:9/h"], "triggers": triggers})).unwrap(),
        secret: "s".into(),
        created_ms: 0,
    }
}

fn event(action: Action, path: &str) -> AuditEvent {
    let mut p = Principal::cli();
    p.protocol = Protocol::Sftp;
    AuditEvent::by(&p, action, Outcome::Ok).path(path.to_owned())
}

#[test]
fn files_com_webhook_values_parse_and_bad_ones_are_refused_with_a_reason() {
    let v = value(json!({
        "urls": ["http://127.0.0.1:8080/a", "http://127.0.0.1:8081/b"],
        "method": "GET",
        "triggers": ["create", "destroy"],
        "encoding": "RAW",
        "headers": {"X-Partner": "acme"},
        "body": {"team": "ops"}
    }))
    .unwrap();
    assert_eq!(v.urls.len(), 2);
    assert_eq!((v.method, v.encoding), (Method::Get, Encoding::Form));
    let as_string = serde_json::Value::String(json!({"urls": ["http://127.0.0.1/x"]}).to_string());
    assert!(
        WebhookValue::parse(&as_string, &Allow::all()).is_ok(),
        "a JSON-encoded string"
    );
    for bad in [
        json!({}),
        json!({"urls": []}),
        json!({"urls": ["ftp://127.0.0.1/"]}),
        json!({"urls": ["http://10.0.0.1/"]}),
        json!({"urls": ["http://169.254.169.254/latest/meta-data"]}),
        json!({"urls": ["http://127.0.0.1/"], "method": "PUT"}),
        json!({"urls": ["http://127.0.0.1/"], "triggers": ["explode"]}),
        json!({"urls": ["http://127.0.0.1/"], "encoding": "XML"}),
        json!({"urls": ["http://127.0.0.1/"], "headers": {"X-Filegate-Signature": "forged"}}),
        json!({"urls": ["http://127.0.0.1/"], "headers": {"Host": "evil"}}),
        json!({"urls": ["http://127.0.0.1/"], "headers": {"X-A": "a\r\nX-B: b"}}),
        json!({"urls": ["http://127.0.0.1/"], "surprise": 1}),
        json!("not an object"),
    ] {
        assert!(value(bad.clone()).is_err(), "{bad} must be refused");
    }
}

#[test]
fn a_rule_watches_its_folder_and_below_for_its_triggers_only() {
    let r = rule("/a", &["create"]);
    assert!(r.matches(&event(Action::Upload, "/a/x.txt"), "create"));
    assert!(r.matches(&event(Action::Upload, "/a/b/c/x.txt"), "create"));
    assert!(r.matches(&event(Action::Mkdir, "/a"), "create"));
    assert!(
        !r.matches(&event(Action::Upload, "/b/x.txt"), "create"),
        "/b is not /a"
    );
    assert!(
        !r.matches(&event(Action::Upload, "/ab/x.txt"), "create"),
        "/ab is not /a"
    );
    assert!(
        !r.matches(&event(Action::Download, "/a/x.txt"), "read"),
        "not a trigger"
    );
    let moved_in = event(Action::Rename, "/b/x").destination("/a/x".to_owned());
    let all = rule("/a", &[]);
    assert!(all.matches(&moved_in, "move"), "a move into the folder");
    assert!(rule("/", &[]).matches(&event(Action::Delete, "/z"), "destroy"));
    let mut old = rule("/", &[]);
    old.created_ms = i64::MAX;
    assert!(
        !old.matches(&event(Action::Upload, "/a"), "create"),
        "older than the rule"
    );
}

#[test]
fn only_successful_file_operations_are_webhook_events() {
    assert_eq!(trigger_of(&event(Action::Upload, "/a")), Some("create"));
    assert_eq!(trigger_of(&event(Action::Mkdir, "/a")), Some("create"));
    assert_eq!(trigger_of(&event(Action::Download, "/a")), Some("read"));
    assert_eq!(trigger_of(&event(Action::Delete, "/a")), Some("destroy"));
    assert_eq!(trigger_of(&event(Action::Rename, "/a")), Some("move"));
    assert_eq!(trigger_of(&event(Action::Copy, "/a")), Some("copy"));
    assert_eq!(trigger_of(&event(Action::List, "/a")), None);
    assert_eq!(trigger_of(&event(Action::Login, "/a")), None);
    let mut p = Principal::cli();
    p.protocol = Protocol::Ftp;
    let denied = AuditEvent::by(&p, Action::Upload, Outcome::Denied).path("/a".to_owned());
    assert_eq!(trigger_of(&denied), None);
}

#[test]
fn a_post_is_signed_over_timestamp_and_body_and_a_get_over_its_query() {
    let e = event(Action::Upload, "/a/x.txt").bytes(5);
    let payload = payload(&e, "create");
    assert_eq!(payload["path"], "a/x.txt");
    assert_eq!(payload["size"], 5);
    assert_eq!(payload["interface"], "sftp");
    let post =
        value(json!({"urls": ["http://127.0.0.1/h"], "body": {"team": "ops", "action": "x"}}))
            .unwrap();
    let out = outgoing(&post, "k", "http://127.0.0.1/h", &payload, "ek", 1700000000);
    let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["team"], "ops");
    assert_eq!(
        body["action"], "create",
        "the event's fields win over body fields"
    );
    let sig = out
        .headers
        .iter()
        .find(|(k, _)| k == "X-Filegate-Signature")
        .unwrap();
    assert_eq!(sig.1, sign("k", 1700000000, &out.body));
    assert!(sig.1.starts_with("sha256=") && sig.1.len() == 7 + 64);
    assert_ne!(
        sign("k", 1700000001, &out.body),
        sig.1,
        "the timestamp is signed"
    );
    let get = value(json!({"urls": ["http://127.0.0.1/h?x=1"], "method": "GET"})).unwrap();
    let out = outgoing(&get, "k", "http://127.0.0.1/h?x=1", &payload, "ek", 1);
    assert!(out.body.is_empty());
    let query = out
        .url
        .split_once('?')
        .unwrap()
        .1
        .split_once('&')
        .unwrap()
        .1;
    assert!(query.contains("path=a%2Fx.txt"), "{query}");
    let sig = out
        .headers
        .iter()
        .find(|(k, _)| k == "X-Filegate-Signature")
        .unwrap();
    assert_eq!(sig.1, sign("k", 1, query.as_bytes()));
}

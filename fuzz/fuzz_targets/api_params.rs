//! The REST API parameters: any query string and body either parse or give a clear error,
//! and no typed getter panics on what was parsed. Oversized bodies are always refused.
#![no_main]

use filegate::api::{ApiError, Params};
use libfuzzer_sys::fuzz_target;

const KEYS: &[&str] = &[
    "id",
    "name",
    "path",
    "user_id",
    "expires_at",
    "permission_set",
    "per_page",
    "cursor",
    "sort_by",
    "filter",
    "filter_gt",
    "ids",
    "flag",
    "",
];

fuzz_target!(|data: &[u8]| {
    // The query string is everything before the first NUL (as text), the body the rest.
    let (query, body) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let query = String::from_utf8_lossy(query);
    let query = (!query.is_empty()).then_some(query.as_ref());
    match Params::parse(query, body) {
        Ok(params) => {
            for key in KEYS {
                let _ = params.has(key);
                let _ = params.str(key);
                let _ = params.required_str(key);
                let _ = params.i64(key);
                let _ = params.bool(key);
                let _ = params.time(key);
                let _ = params.object(key);
                let _ = params.list(key);
            }
            let _ = params.check_id(1);
            let _ = params.check_id(i64::MAX);
            let _ = params.only(&["name", "path"], &["id"]);
        }
        Err(ApiError::BodyTooLarge) => assert!(body.len() > filegate::api::MAX_BODY),
        Err(_) => {}
    }
});

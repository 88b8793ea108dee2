//! Request parameters the way Files.com's SDKs send them: GET/DELETE in the query string
//! (`sort_by[field]=desc`, `name[]=v`, booleans as `True`/`False`), POST/PATCH as a JSON
//! body. Both are merged into one map; typed getters give clear 400s.

use serde_json::{Map, Value};

use super::error::ApiError;

/// Largest JSON body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The parameters of one request.
#[derive(Debug, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    /// Parses the query string and (if any) the JSON body.
    pub fn parse(query: Option<&str>, body: &[u8]) -> Result<Params, ApiError> {
        let mut map = Map::new();
        if let Some(query) = query {
            for (key, value) in form_urlencoded::parse(query.as_bytes()) {
                insert_query(&mut map, &key, value.into_owned());
            }
        }
        if body.len() > MAX_BODY {
            return Err(ApiError::BodyTooLarge);
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let text =
                std::str::from_utf8(body).map_err(|_| ApiError::InvalidBody("not UTF-8".into()))?;
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(object)) => map.extend(object),
                Ok(_) => return Err(ApiError::InvalidBody("expected a JSON object".into())),
                Err(e) => return Err(ApiError::InvalidBody(e.to_string())),
            }
        }
        Ok(Params(map))
    }

    /// A parameter as sent (objects included), `None` when absent or null.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|v| !v.is_null())
    }

    /// Refuses fields outside `allowed` (and the read-only ones clients echo back).
    pub fn only(&self, allowed: &[&str], echoed: &[&str]) -> Result<(), ApiError> {
        for key in self.0.keys() {
            if !allowed.contains(&key.as_str()) && !echoed.contains(&key.as_str()) {
                let shown: String = key.chars().take(64).collect();
                return Err(ApiError::ParamsInvalid(format!(
                    "unknown parameter {shown:?}"
                )));
            }
        }
        Ok(())
    }

    /// A string parameter (`None` when absent or null).
    pub fn str(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::ParamsInvalid(format!("{key} must be a string"))),
        }
    }

    pub fn required_str(&self, key: &str) -> Result<String, ApiError> {
        match self.str(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(ApiError::ParamsRequired(format!("{key} is required"))),
        }
    }

    /// An integer parameter (a JSON number or a decimal string).
    pub fn i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let bad = || ApiError::ParamsInvalid(format!("{key} must be an integer"));
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// A boolean (`true`/`false`, `True`/`False`, `1`/`0`).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.as_str() {
                "true" | "True" | "1" => Ok(Some(true)),
                "false" | "False" | "0" => Ok(Some(false)),
                _ => Err(ApiError::ParamsInvalid(format!(
                    "{key} must be true or false"
                ))),
            },
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(_) => Err(ApiError::ParamsInvalid(format!(
                "{key} must be true or false"
            ))),
        }
    }

    /// A timestamp (RFC 3339 or a date) as Unix seconds.
    pub fn time(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => crate::model::parse_time(&s)
                .map(Some)
                .ok_or_else(|| ApiError::ParamsInvalid(format!("{key} must be an ISO 8601 time"))),
        }
    }

    /// A nested object such as `sort_by` or `filter_gt`, as field → text.
    pub fn object(&self, key: &str) -> Result<Vec<(String, String)>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(n) => Ok((k.clone(), n.to_string())),
                    Value::Bool(b) => Ok((k.clone(), b.to_string())),
                    _ => Err(ApiError::ParamsInvalid(format!(
                        "{key}[{k}] must be a value"
                    ))),
                })
                .collect(),
            Some(_) => Err(ApiError::ParamsInvalid(format!("{key} must be an object"))),
        }
    }

    /// A list of strings (`name[]=a&name[]=b`, a JSON array, or a comma-separated string).
    pub fn list(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ApiError::ParamsInvalid(format!("{key} must hold strings")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Some(_) => Err(ApiError::ParamsInvalid(format!("{key} must be a list"))),
        }
    }

    /// The SDK repeats a path id among the parameters: accept it, refuse a mismatch.
    pub fn check_id(&self, path_id: i64) -> Result<(), ApiError> {
        match self.i64("id")? {
            Some(id) if id != path_id => {
                Err(ApiError::ParamsInvalid("id does not match the path".into()))
            }
            _ => Ok(()),
        }
    }
}

fn insert_query(map: &mut Map<String, Value>, key: &str, value: String) {
    if let Some(name) = key.strip_suffix("[]") {
        let entry = map
            .entry(name.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = entry {
            items.push(Value::String(value));
        }
        return;
    }
    if let (Some(open), true) = (key.find('['), key.ends_with(']')) {
        let (outer, inner) = (&key[..open], &key[open + 1..key.len() - 1]);
        let entry = map
            .entry(outer.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(object) = entry {
            object.insert(inner.to_owned(), Value::String(value));
        }
        return;
    }
    map.insert(key.to_owned(), Value::String(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_nested_and_list_parameters() {
        let p = Params::parse(Some("sort_by%5Bexpires_at%5D=desc&filter_gt[expires_at]=2020-01-01&ids[]=1&ids[]=2&per_page=5&flag=True"), b"").unwrap();
        assert_eq!(
            p.object("sort_by").unwrap(),
            vec![("expires_at".into(), "desc".into())]
        );
        assert_eq!(p.object("filter_gt").unwrap()[0].1, "2020-01-01");
        assert_eq!(p.list("ids").unwrap().unwrap(), vec!["1", "2"]);
        assert_eq!(p.i64("per_page").unwrap(), Some(5));
        assert_eq!(p.bool("flag").unwrap(), Some(true));
    }

    #[test]
    fn json_bodies_merge_and_bad_ones_are_refused() {
        let p = Params::parse(Some("id=3"), br#"{"name": "k", "user_id": 0}"#).unwrap();
        assert_eq!(p.str("name").unwrap().as_deref(), Some("k"));
        assert_eq!(p.i64("user_id").unwrap(), Some(0));
        assert!(p.check_id(3).is_ok());
        assert!(matches!(p.check_id(4), Err(ApiError::ParamsInvalid(_))));
        assert!(matches!(
            Params::parse(None, b"{not json"),
            Err(ApiError::InvalidBody(_))
        ));
        assert!(matches!(
            Params::parse(None, b"[1,2]"),
            Err(ApiError::InvalidBody(_))
        ));
        assert!(matches!(
            Params::parse(None, b"\xff\xfe"),
            Err(ApiError::InvalidBody(_))
        ));
        assert!(matches!(
            Params::parse(None, &vec![b' '; MAX_BODY + 1]),
            Err(ApiError::BodyTooLarge)
        ));
    }

    #[test]
    fn wrong_types_are_clear_errors() {
        let p = Params::parse(
            None,
            br#"{"per_page": "many", "name": [1], "flag": "maybe"}"#,
        )
        .unwrap();
        assert!(matches!(p.i64("per_page"), Err(ApiError::ParamsInvalid(_))));
        assert!(matches!(p.str("name"), Err(ApiError::ParamsInvalid(_))));
        assert!(matches!(p.bool("flag"), Err(ApiError::ParamsInvalid(_))));
        assert!(matches!(
            p.required_str("missing"),
            Err(ApiError::ParamsRequired(_))
        ));
        assert!(matches!(
            p.only(&["per_page"], &[]),
            Err(ApiError::ParamsInvalid(_))
        ));
    }
}

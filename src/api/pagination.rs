//! Key-set pagination: a cursor names the last record shown (its sort value and id), never
//! an offset, so pages stay right while records are added and removed. Cursors are signed
//! (HMAC-SHA256 under a key shared by every replica through the store) together with the
//! sort they belong to: a forged cursor, or one reused with other sort parameters, is
//! refused.

use std::cmp::Ordering;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::params::Params;

pub const DEFAULT_PER_PAGE: i64 = 1000;
pub const MAX_PER_PAGE: i64 = 10_000;

/// Signs and checks cursors.
pub struct Cursors {
    key: [u8; 32],
}

/// A position in a sorted listing: after the record with this sort value and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub value: i64,
    pub id: i64,
}

impl Cursors {
    /// Cursors signed under `secret`: the same secret on every replica (the store's shared
    /// `api_cursor_key`) makes a cursor from one replica good on all of them.
    pub fn new(secret: &[u8]) -> Cursors {
        use sha2::Digest;
        Cursors {
            key: Sha256::digest(secret).into(),
        }
    }

    fn tag(&self, payload: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A cursor for the position after `pos` in the listing sorted by `sort`.
    pub fn encode(&self, sort: &str, pos: Position) -> String {
        let payload = format!("{sort}|{}|{}", pos.value, pos.id);
        format!("{}{}", hex::encode(payload.as_bytes()), self.tag(&payload))
    }

    /// The position named by the request's `cursor` parameter, if it has one.
    pub fn after(&self, params: &Params, sort: &str) -> Result<Option<Position>, ApiError> {
        match params.str("cursor")? {
            Some(cursor) if !cursor.is_empty() => self.decode(sort, &cursor).map(Some),
            _ => Ok(None),
        }
    }

    /// The position a cursor names, if it is genuine and belongs to `sort`.
    pub fn decode(&self, sort: &str, cursor: &str) -> Result<Position, ApiError> {
        if cursor.len() < 34 || cursor.len() > 1024 || !cursor.is_ascii() {
            return Err(ApiError::InvalidCursor);
        }
        let (body, tag) = cursor.split_at(cursor.len() - 32);
        let payload = hex::decode(body)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(ApiError::InvalidCursor)?;
        if !bool::from(self.tag(&payload).as_bytes().ct_eq(tag.as_bytes())) {
            return Err(ApiError::InvalidCursor);
        }
        let mut parts = payload.rsplitn(3, '|');
        let id = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(ApiError::InvalidCursor)?;
        let value = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(ApiError::InvalidCursor)?;
        if parts.next() != Some(sort) {
            return Err(ApiError::InvalidCursor);
        }
        Ok(Position { value, id })
    }
}

/// `per_page` from the parameters: 1 to 10 000, default 1 000.
pub fn per_page(params: &Params) -> Result<i64, ApiError> {
    match params.i64("per_page")? {
        None => Ok(DEFAULT_PER_PAGE),
        Some(n) if (1..=MAX_PER_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::ParamsInvalid(format!(
            "per_page must be between 1 and {MAX_PER_PAGE}"
        ))),
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// Reads `sort_by`, allowing only `fields`; returns (field, direction) or the default.
pub fn sort_by(
    params: &Params,
    fields: &[&str],
    default: (&'static str, Direction),
) -> Result<(String, Direction), ApiError> {
    let given = params.object("sort_by")?;
    match given.as_slice() {
        [] => Ok((default.0.to_owned(), default.1)),
        [(field, dir)] => {
            if !fields.contains(&field.as_str()) {
                return Err(ApiError::InvalidSortField(field.chars().take(64).collect()));
            }
            let direction = match dir.to_ascii_lowercase().as_str() {
                "asc" => Direction::Asc,
                "desc" => Direction::Desc,
                _ => {
                    return Err(ApiError::ParamsInvalid(
                        "sort direction must be asc or desc".into(),
                    ));
                }
            };
            Ok((field.clone(), direction))
        }
        _ => Err(ApiError::ParamsInvalid(
            "sort by one field at a time".into(),
        )),
    }
}

/// Orders two positions in a listing sorted in `dir` (ties broken by id the same way).
pub fn compare(a: Position, b: Position, dir: Direction) -> Ordering {
    let natural = (a.value, a.id).cmp(&(b.value, b.id));
    match dir {
        Direction::Asc => natural,
        Direction::Desc => natural.reverse(),
    }
}

/// One page of a listing: its items, and the positions to continue from.
pub struct Page<T> {
    pub items: Vec<T>,
    /// After the last item, when more follow.
    pub next: Option<Position>,
    /// Before the previous page, when this is not the first page.
    pub prev: Option<Position>,
}

/// A position before every item in `dir` (the "first page" cursor).
fn start(dir: Direction) -> Position {
    match dir {
        Direction::Asc => Position {
            value: i64::MIN,
            id: i64::MIN,
        },
        Direction::Desc => Position {
            value: i64::MAX,
            id: i64::MAX,
        },
    }
}

/// One page of `items` (any order) sorted by `position` in `dir`, starting after `after`.
pub fn page<T>(
    mut items: Vec<T>,
    position: impl Fn(&T) -> Position,
    dir: Direction,
    after: Option<Position>,
    per_page: i64,
) -> Page<T> {
    items.sort_by(|a, b| compare(position(a), position(b), dir));
    let first = match after {
        Some(after) => items
            .iter()
            .take_while(|item| compare(position(item), after, dir) != Ordering::Greater)
            .count(),
        None => 0,
    };
    let per_page = per_page as usize;
    let prev = (first > 0).then(|| match first.checked_sub(per_page + 1) {
        Some(i) => position(&items[i]),
        None => start(dir),
    });
    let mut rest: Vec<T> = items.into_iter().skip(first).collect();
    let more = rest.len() > per_page;
    rest.truncate(per_page);
    let next = if more {
        rest.last().map(&position)
    } else {
        None
    };
    Page {
        items: rest,
        next,
        prev,
    }
}

/// Puts `X-Files-Cursor-Next` / `X-Files-Cursor-Prev` on a response.
pub fn set_cursors(
    headers: &mut axum::http::HeaderMap,
    cursors: &Cursors,
    sort: &str,
    next: Option<Position>,
    prev: Option<Position>,
) {
    for (name, pos) in [("X-Files-Cursor-Next", next), ("X-Files-Cursor-Prev", prev)] {
        if let Some(pos) = pos
            && let Ok(value) = axum::http::HeaderValue::from_str(&cursors.encode(sort, pos))
        {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgery_or_another_sort() {
        let c = Cursors::new(b"replica secret");
        let pos = Position { value: -5, id: 42 };
        let cursor = c.encode("keys:expires_at:asc", pos);
        assert!(cursor.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(c.decode("keys:expires_at:asc", &cursor).unwrap(), pos);
        assert!(c.decode("keys:expires_at:desc", &cursor).is_err());
        let mut forged = cursor.clone().into_bytes();
        forged[3] = if forged[3] == b'0' { b'1' } else { b'0' };
        assert!(
            c.decode("keys:expires_at:asc", std::str::from_utf8(&forged).unwrap())
                .is_err()
        );
        assert!(c.decode("keys:expires_at:asc", "abc").is_err());
        assert_eq!(
            Cursors::new(b"replica secret")
                .decode("keys:expires_at:asc", &cursor)
                .unwrap(),
            pos,
            "another replica with the same shared key reads the cursor"
        );
        assert!(
            Cursors::new(b"another secret")
                .decode("keys:expires_at:asc", &cursor)
                .is_err()
        );
    }

    #[test]
    fn pages_continue_after_the_last_item_even_when_items_change() {
        let pos = |n: &i64| Position {
            value: *n / 10,
            id: *n,
        };
        let Page {
            items: first,
            next,
            prev,
        } = page(vec![30, 10, 20, 40], pos, Direction::Asc, None, 2);
        assert_eq!(first, vec![10, 20]);
        assert_eq!(prev, None, "the first page has no previous page");
        // 20 is deleted and 15 inserted before the next page is asked for.
        let Page {
            items: second,
            next: next2,
            prev: back,
        } = page(vec![10, 15, 30, 40], pos, Direction::Asc, next, 2);
        assert_eq!(second, vec![30, 40]);
        assert_eq!(next2, None);
        let again = page(vec![10, 15, 30, 40], pos, Direction::Asc, back, 2);
        assert_eq!(again.items, vec![10, 15], "the previous page, as it is now");
        let desc = page(
            vec![1, 2, 3],
            |n: &i64| Position { value: 0, id: *n },
            Direction::Desc,
            None,
            10,
        );
        assert_eq!(desc.items, vec![3, 2, 1]);
    }
}

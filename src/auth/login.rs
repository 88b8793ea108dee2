//! Login names: `@api-<id>` and `@api-<name>` select an API key, anything else a user.

/// Longest login name accepted (longer ones are refused without a lookup).
pub const MAX_LOGIN_CHARS: usize = 256;

const KEY_PREFIX: &str = "@api-";

/// What a login name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginName {
    KeyId(i64),
    KeyName(String),
    User(String),
}

/// A login name that can never match anything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed login name")]
pub struct MalformedLogin;

impl LoginName {
    /// `@api-` is matched case-insensitively; all digits after it mean a key id (key names
    /// may not be all digits, so this is never ambiguous).
    pub fn parse(login: &str) -> Result<LoginName, MalformedLogin> {
        if login.is_empty()
            || login.chars().count() > MAX_LOGIN_CHARS
            || login.chars().any(char::is_control)
        {
            return Err(MalformedLogin);
        }
        let prefix_len = KEY_PREFIX.len();
        if login.len() >= prefix_len
            && login.is_char_boundary(prefix_len)
            && login[..prefix_len].eq_ignore_ascii_case(KEY_PREFIX)
        {
            let rest = &login[prefix_len..];
            if rest.is_empty() {
                return Err(MalformedLogin);
            }
            if rest.bytes().all(|b| b.is_ascii_digit()) {
                return rest
                    .parse()
                    .map(LoginName::KeyId)
                    .map_err(|_| MalformedLogin);
            }
            return Ok(LoginName::KeyName(rest.to_owned()));
        }
        if login.starts_with('@') {
            return Err(MalformedLogin);
        }
        Ok(LoginName::User(login.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_prefix_with_digits_selects_a_key_by_id() {
        assert_eq!(LoginName::parse("@api-42"), Ok(LoginName::KeyId(42)));
        assert_eq!(LoginName::parse("@API-7"), Ok(LoginName::KeyId(7)));
    }

    #[test]
    fn api_prefix_with_a_name_selects_a_key_by_name() {
        assert_eq!(
            LoginName::parse("@Api-My Main API Key"),
            Ok(LoginName::KeyName("My Main API Key".into()))
        );
        assert_eq!(
            LoginName::parse("@api-4x"),
            Ok(LoginName::KeyName("4x".into()))
        );
    }

    #[test]
    fn anything_else_is_a_username() {
        assert_eq!(
            LoginName::parse("alice"),
            Ok(LoginName::User("alice".into()))
        );
        assert_eq!(
            LoginName::parse("api-1"),
            Ok(LoginName::User("api-1".into()))
        );
    }

    #[test]
    fn malformed_logins_are_refused() {
        assert_eq!(LoginName::parse(""), Err(MalformedLogin));
        assert_eq!(LoginName::parse("@api-"), Err(MalformedLogin));
        assert_eq!(LoginName::parse("@root"), Err(MalformedLogin));
        assert_eq!(LoginName::parse("a\0b"), Err(MalformedLogin));
        assert_eq!(LoginName::parse("a\nb"), Err(MalformedLogin));
        assert_eq!(
            LoginName::parse(&"x".repeat(MAX_LOGIN_CHARS + 1)),
            Err(MalformedLogin)
        );
        assert_eq!(
            LoginName::parse("@api-99999999999999999999999"),
            Err(MalformedLogin)
        );
        assert_eq!(LoginName::parse("@ap"), Err(MalformedLogin));
        assert_eq!(LoginName::parse("@apé-1"), Err(MalformedLogin));
    }
}

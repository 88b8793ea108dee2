//! The login-name parser: never panics, and what it returns is consistent with the input:
//! `@api-<digits>` is a key id, `@api-<name>` a key name that is not all digits, anything
//! else not starting with `@` a username equal to the input; the prefix is matched without
//! regard to case.
#![no_main]

use filegate::auth::{LoginName, MAX_LOGIN_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(login) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = LoginName::parse(login);
    match &parsed {
        Err(_) => {}
        Ok(_) => {
            assert!(!login.is_empty());
            assert!(login.chars().count() <= MAX_LOGIN_CHARS);
            assert!(!login.chars().any(char::is_control));
        }
    }
    let prefixed = login.len() >= 5
        && login.is_char_boundary(5)
        && login[..5].eq_ignore_ascii_case("@api-");
    match parsed {
        Ok(LoginName::KeyId(id)) => {
            assert!(prefixed, "{login:?} read as key id {id}");
            let rest = &login[5..];
            assert!(rest.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(rest.parse::<i64>().ok(), Some(id));
        }
        Ok(LoginName::KeyName(name)) => {
            assert!(prefixed, "{login:?} read as key name {name:?}");
            assert_eq!(name, &login[5..]);
            assert!(!name.is_empty());
            assert!(!name.bytes().all(|b| b.is_ascii_digit()));
        }
        Ok(LoginName::User(user)) => {
            assert!(!prefixed && !login.starts_with('@'));
            assert_eq!(user, login);
        }
        Err(_) => {}
    }
    if prefixed {
        // The prefix's case never matters.
        let lower = format!("@api-{}", &login[5..]);
        let upper = format!("@API-{}", &login[5..]);
        assert_eq!(LoginName::parse(&lower), LoginName::parse(&upper));
    }
});

//! The path normaliser: whatever a client sends, `SitePath::resolve` either refuses it or
//! returns a normalised path (absolute, no `.`/`..`/empty segments, no NUL or control
//! characters, within the length limits) that round-trips through `SitePath::parse`, and a
//! relative input without `..` never leaves the current folder. Key paths validated by
//! `from_key_path` round-trip exactly.
#![no_main]

use filegate::path::{MAX_NAME_BYTES, MAX_PATH_BYTES, SitePath};
use libfuzzer_sys::fuzz_target;

fn check_normalised(p: &SitePath) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "not absolute: {s:?}");
    assert!(s.len() <= MAX_PATH_BYTES, "too long: {}", s.len());
    assert!(!s.contains('\0'), "NUL in {s:?}");
    assert!(!s.chars().any(char::is_control), "control char in {s:?}");
    if p.is_root() {
        assert_eq!(s, "/");
    } else {
        assert!(!s.ends_with('/'), "trailing slash: {s:?}");
        for segment in s[1..].split('/') {
            assert!(!segment.is_empty(), "empty segment in {s:?}");
            assert!(segment != "." && segment != "..", "dot segment in {s:?}");
            assert!(segment.len() <= MAX_NAME_BYTES, "long name in {s:?}");
        }
    }
    // Round trips: parsing the normal form gives the same path, and so does resolving its
    // relative form from the root.
    assert_eq!(SitePath::parse(s).as_ref(), Ok(p), "parse round trip of {s:?}");
    assert_eq!(
        SitePath::resolve(&SitePath::root(), p.relative()).as_ref(),
        Ok(p),
        "relative round trip of {s:?}"
    );
    assert!(p.is_within(&SitePath::root()));
    if let (Some(parent), Some(name)) = (p.parent(), p.file_name()) {
        assert!(p.is_within(&parent));
        assert_eq!(parent.join(name).as_ref(), Ok(p), "parent/join of {s:?}");
        assert_eq!(parent.child_toward(p), Some(name));
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: where to split the input into a current folder and a client path.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = (split as usize).min(rest.len());
    let (cwd_bytes, input) = rest.split_at(cut);
    let cwd = SitePath::resolve_bytes(&SitePath::root(), cwd_bytes).unwrap_or_else(|_| SitePath::root());
    check_normalised(&cwd);

    if let Ok(p) = SitePath::resolve_bytes(&cwd, input) {
        check_normalised(&p);
        let text = std::str::from_utf8(input).expect("accepted input is UTF-8");
        if !text.starts_with('/') && !text.split('/').any(|s| s == "..") {
            assert!(p.is_within(&cwd), "{text:?} from {cwd:?} left it: {p:?}");
        }
        // Resolving twice changes nothing.
        assert_eq!(SitePath::resolve(&cwd, p.as_str()).as_ref(), Ok(&p));
    }

    if let Ok(text) = std::str::from_utf8(input) {
        if let Ok(key_path) = SitePath::from_key_path(text) {
            check_normalised(&key_path);
            assert_eq!(key_path.relative(), text, "key path round trip");
        }
        let joined = SitePath::common_ancestor([&cwd]);
        assert_eq!(joined, cwd);
    }
});

//! Refusals are recorded at a bounded rate per session, with long paths cut.

use super::{Fixture, p};
use crate::audit::{Action, Outcome, PATH_CAP};
use crate::files::FsError;
use crate::files::denials::RECORDED_PER_WINDOW;
use crate::identity::GrantLevel::Full;
use crate::test_support::principal;

#[tokio::test]
async fn a_session_flooding_refused_stats_is_recorded_at_a_bounded_rate_while_another_session_is_still_recorded()
 {
    let fx = Fixture::new();
    let mut flooder = principal(&[("/mine", Full)], None);
    flooder.client.session_id = "flooder".into();
    let mut other = principal(&[("/mine", Full)], None);
    other.client.session_id = "other".into();
    for _ in 0..10_000 {
        assert!(matches!(
            fx.files.stat(&flooder, &p("/hidden/x")).await,
            Err(FsError::NotFound)
        ));
    }
    for _ in 0..3 {
        assert!(matches!(
            fx.files.stat(&other, &p("/hidden/y")).await,
            Err(FsError::NotFound)
        ));
    }
    let events = fx.audit.events();
    let of = |s: &str| {
        events
            .iter()
            .filter(|e| e.session_id.as_deref() == Some(s))
            .count()
    };
    assert_eq!(of("flooder"), RECORDED_PER_WINDOW as usize);
    assert_eq!(
        of("other"),
        3,
        "another session's refusals are still recorded"
    );
    assert!(
        events
            .iter()
            .all(|e| e.outcome == Outcome::Denied && e.action == Action::Stat)
    );
    assert_eq!(
        fx.files.denials.unrecorded(),
        10_000 - u64::from(RECORDED_PER_WINDOW)
    );
}

#[tokio::test]
async fn a_refused_long_path_is_cut_in_the_audit_record() {
    let fx = Fixture::new();
    let who = principal(&[("/mine", Full)], None);
    let segments: Vec<String> = (0..20).map(|_| "b".repeat(200)).collect();
    let long = format!("/hidden/{}/{}", "a".repeat(200), segments.join("/"));
    let Ok(path) = crate::path::SitePath::parse(&long) else {
        panic!("a 4.8 KB path parses");
    };
    assert!(fx.files.stat(&who, &path).await.is_err());
    let recorded = fx.audit.last().unwrap().path.unwrap();
    assert!(
        recorded.len() <= PATH_CAP + '…'.len_utf8(),
        "{}",
        recorded.len()
    );
    assert!(recorded.starts_with("/hidden/aaa") && recorded.ends_with('…'));
}

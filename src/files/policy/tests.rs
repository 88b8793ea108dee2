use super::*;
use crate::identity::{ClientInfo, Grant, KeyIdentity, PermissionSet, Protocol, UserIdentity};

fn p(s: &str) -> SitePath {
    SitePath::parse(s).unwrap()
}

fn user(grants: &[(&str, GrantLevel)]) -> Principal {
    Principal {
        user: Some(UserIdentity {
            id: 1,
            username: "u".into(),
            revision: 1,
        }),
        key: None,
        site_admin: false,
        grants: grants
            .iter()
            .map(|(path, level)| Grant {
                path: p(path),
                level: *level,
            })
            .collect(),
        protocol: Protocol::Sftp,
        client: ClientInfo::new(None),
    }
}

fn with_key(mut principal: Principal, path: Option<&str>, set: PermissionSet) -> Principal {
    principal.key = Some(KeyIdentity {
        id: 9,
        name: "k".into(),
        permission_set: set,
        path: path.map(|s| SitePath::from_key_path(s).unwrap()),
        revision: 1,
    });
    principal
}

#[test]
fn a_grant_covers_its_folder_and_everything_below() {
    let scope = Scope::of(&user(&[("/team", GrantLevel::ReadOnly)]));
    let read = GrantLevel::ReadOnly.access();
    assert_eq!(scope.visibility(&p("/team")), Visibility::Granted(read));
    assert_eq!(scope.visibility(&p("/team/a/b")), Visibility::Granted(read));
    assert_eq!(scope.visibility(&p("/teamx")), Visibility::Hidden);
    assert_eq!(scope.visibility(&p("/other")), Visibility::Hidden);
}

#[test]
fn grants_add_up_where_they_overlap() {
    let scope = Scope::of(&user(&[
        ("/a", GrantLevel::ReadOnly),
        ("/a/in", GrantLevel::WriteOnly),
    ]));
    let Visibility::Granted(inner) = scope.visibility(&p("/a/in/x")) else {
        panic!()
    };
    assert!(inner.contains(Access::READ | Access::WRITE | Access::MKDIR));
    assert!(!inner.contains(Access::DELETE));
    let Visibility::Granted(outer) = scope.visibility(&p("/a/x")) else {
        panic!()
    };
    assert!(!outer.contains(Access::WRITE));
}

#[test]
fn ancestors_of_grants_show_only_the_way_down() {
    let scope = Scope::of(&user(&[
        ("/a/b", GrantLevel::Full),
        ("/c", GrantLevel::List),
    ]));
    assert_eq!(scope.visibility(&SitePath::root()), Visibility::Traverse);
    assert_eq!(scope.visibility(&p("/a")), Visibility::Traverse);
    assert!(scope.shows_child(&SitePath::root(), "a"));
    assert!(scope.shows_child(&SitePath::root(), "c"));
    assert!(!scope.shows_child(&SitePath::root(), "secret"));
    assert!(scope.shows_child(&p("/a"), "b"));
    assert!(!scope.shows_child(&p("/a"), "x"));
    assert!(scope.shows_child(&p("/a/b"), "anything"));
}

#[test]
fn a_key_path_narrows_the_owners_grants() {
    let owner = user(&[("/team", GrantLevel::Full), ("/other", GrantLevel::Full)]);
    let scope = Scope::of(&with_key(owner, Some("team/drop"), PermissionSet::Full));
    assert_eq!(
        scope.visibility(&p("/team/drop/f")),
        Visibility::Granted(Access::ALL)
    );
    assert_eq!(scope.visibility(&p("/team/x")), Visibility::Hidden);
    assert_eq!(scope.visibility(&p("/other")), Visibility::Hidden);
    assert_eq!(scope.visibility(&p("/team")), Visibility::Traverse);
    assert_eq!(scope.start_dir(), p("/team/drop"));
}

#[test]
fn a_key_never_exceeds_its_owner() {
    let owner = user(&[("/team/sub", GrantLevel::ReadOnly)]);
    let scope = Scope::of(&with_key(owner, Some("team"), PermissionSet::Full));
    assert_eq!(scope.visibility(&p("/team/other")), Visibility::Hidden);
    assert_eq!(
        scope.visibility(&p("/team/sub/f")),
        Visibility::Granted(GrantLevel::ReadOnly.access())
    );
}

#[test]
fn permission_sets_mask_file_operations() {
    let owner = user(&[("/", GrantLevel::Full)]);
    let read = Scope::of(&with_key(owner.clone(), None, PermissionSet::ReadOnly));
    assert_eq!(
        read.visibility(&p("/f")),
        Visibility::Granted(Access::LIST | Access::READ)
    );
    let write = Scope::of(&with_key(owner.clone(), None, PermissionSet::WriteOnly));
    let Visibility::Granted(w) = write.visibility(&p("/f")) else {
        panic!()
    };
    assert!(w.contains(Access::WRITE) && !w.contains(Access::READ) && !w.contains(Access::DELETE));
    let files = Scope::of(&with_key(owner, None, PermissionSet::FilesOnly));
    assert_eq!(files.visibility(&p("/f")), Visibility::Granted(Access::ALL));
}

#[test]
fn a_writeonly_key_over_a_readonly_grant_reaches_nothing_but_listing() {
    let owner = user(&[("/a", GrantLevel::ReadOnly)]);
    let scope = Scope::of(&with_key(owner, None, PermissionSet::WriteOnly));
    assert_eq!(
        scope.visibility(&p("/a/f")),
        Visibility::Granted(Access::LIST)
    );
}

#[test]
fn site_admins_and_site_wide_keys_hold_everything_within_their_key_path() {
    let mut admin = user(&[]);
    admin.site_admin = true;
    assert_eq!(
        Scope::of(&admin).visibility(&p("/x/y")),
        Visibility::Granted(Access::ALL)
    );
    let mut site_key = with_key(Principal::cli(), Some("shared/docs"), PermissionSet::Full);
    site_key.site_admin = true;
    let scope = Scope::of(&site_key);
    assert_eq!(
        scope.visibility(&p("/shared/docs/a")),
        Visibility::Granted(Access::ALL)
    );
    assert_eq!(scope.visibility(&p("/shared/x")), Visibility::Hidden);
    assert_eq!(scope.start_dir(), p("/shared/docs"));
}

#[test]
fn a_user_without_grants_reaches_nothing() {
    let scope = Scope::of(&user(&[]));
    assert!(scope.is_empty());
    assert_eq!(scope.visibility(&SitePath::root()), Visibility::Traverse);
    assert!(!scope.shows_child(&SitePath::root(), "anything"));
    assert_eq!(scope.visibility(&p("/a")), Visibility::Hidden);
}

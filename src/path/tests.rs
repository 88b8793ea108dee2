use super::*;

fn p(s: &str) -> SitePath {
    SitePath::parse(s).unwrap()
}

#[test]
fn dot_dot_never_climbs_above_the_root() {
    assert_eq!(p("/../../etc/passwd").as_str(), "/etc/passwd");
    assert_eq!(
        SitePath::resolve(&p("/a/b"), "../../../x")
            .unwrap()
            .as_str(),
        "/x"
    );
    assert_eq!(SitePath::resolve(&p("/a"), "..").unwrap(), SitePath::root());
}

#[test]
fn relative_inputs_resolve_against_the_current_folder() {
    assert_eq!(
        SitePath::resolve(&p("/a"), "b/./c/").unwrap().as_str(),
        "/a/b/c"
    );
    assert_eq!(SitePath::resolve(&p("/a"), "/z").unwrap().as_str(), "/z");
    assert_eq!(SitePath::resolve(&p("/a"), "").unwrap().as_str(), "/a");
    assert_eq!(
        SitePath::resolve(&p("/a"), "//x///y").unwrap().as_str(),
        "/x/y"
    );
}

#[test]
fn nul_control_characters_and_bad_utf8_are_refused() {
    assert_eq!(SitePath::parse("/a\0b"), Err(PathError::Nul));
    assert_eq!(SitePath::parse("/a\nb"), Err(PathError::ControlChar));
    assert_eq!(
        SitePath::resolve_bytes(&SitePath::root(), b"/a\xff"),
        Err(PathError::InvalidUtf8)
    );
}

#[test]
fn over_long_names_and_paths_are_refused() {
    let name = "n".repeat(MAX_NAME_BYTES + 1);
    assert_eq!(
        SitePath::parse(&format!("/{name}")),
        Err(PathError::NameTooLong)
    );
    let long = "/abcdefghi".repeat(MAX_PATH_BYTES / 10 + 1);
    assert_eq!(SitePath::parse(&long), Err(PathError::TooLong));
    let huge = "a".repeat(MAX_PATH_BYTES * 3);
    assert_eq!(SitePath::parse(&huge), Err(PathError::TooLong));
}

#[test]
fn key_paths_follow_the_files_com_rules() {
    assert_eq!(
        SitePath::from_key_path("shared/docs").unwrap().as_str(),
        "/shared/docs"
    );
    assert_eq!(
        SitePath::from_key_path("/shared"),
        Err(PathError::EdgeSlash)
    );
    assert_eq!(
        SitePath::from_key_path("shared/"),
        Err(PathError::EdgeSlash)
    );
    assert_eq!(SitePath::from_key_path("a//b"), Err(PathError::BadSegment));
    assert_eq!(
        SitePath::from_key_path("a/../b"),
        Err(PathError::BadSegment)
    );
    assert_eq!(SitePath::from_key_path("a/./b"), Err(PathError::BadSegment));
    assert_eq!(SitePath::from_key_path(""), Err(PathError::Empty));
    assert_eq!(
        SitePath::from_key_path(&"x".repeat(MAX_PATH_BYTES + 1)),
        Err(PathError::TooLong)
    );
}

#[test]
fn within_compares_whole_segments() {
    assert!(p("/a/b").is_within(&p("/a")));
    assert!(p("/a").is_within(&p("/a")));
    assert!(p("/a").is_within(&SitePath::root()));
    assert!(!p("/ab").is_within(&p("/a")));
    assert!(!p("/a").is_within(&p("/a/b")));
}

#[test]
fn parent_name_join_and_child_toward_agree() {
    assert_eq!(p("/a/b").parent().unwrap().as_str(), "/a");
    assert_eq!(p("/a").parent().unwrap(), SitePath::root());
    assert_eq!(SitePath::root().parent(), None);
    assert_eq!(p("/a/b").file_name(), Some("b"));
    assert_eq!(p("/a").join("c").unwrap().as_str(), "/a/c");
    assert_eq!(p("/a").join(".."), Err(PathError::BadSegment));
    assert_eq!(p("/a").join("x/y"), Err(PathError::BadSegment));
    assert_eq!(SitePath::root().child_toward(&p("/a/b")), Some("a"));
    assert_eq!(p("/a").child_toward(&p("/a/b/c")), Some("b"));
    assert_eq!(p("/a").child_toward(&p("/a")), None);
}

#[test]
fn common_ancestor_is_the_deepest_shared_folder() {
    assert_eq!(
        SitePath::common_ancestor([&p("/a/b/c"), &p("/a/b/d")]).as_str(),
        "/a/b"
    );
    assert_eq!(SitePath::common_ancestor([&p("/a/b")]).as_str(), "/a/b");
    assert_eq!(
        SitePath::common_ancestor([&p("/x"), &p("/y")]),
        SitePath::root()
    );
    assert_eq!(SitePath::common_ancestor([]), SitePath::root());
}

#[test]
fn relative_to_strips_an_ancestor_by_whole_names_only() {
    assert_eq!(
        p("/archive/a/b").relative_to(&p("/archive")),
        Some(p("/a/b"))
    );
    assert_eq!(
        p("/archive").relative_to(&p("/archive")),
        Some(SitePath::root())
    );
    assert_eq!(p("/x").relative_to(&SitePath::root()), Some(p("/x")));
    assert_eq!(p("/archive2/a").relative_to(&p("/archive")), None);
    assert_eq!(p("/arch").relative_to(&p("/archive")), None);
    assert_eq!(SitePath::root().relative_to(&p("/archive")), None);
}

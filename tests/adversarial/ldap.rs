//! Hostile sign-ins against LDAP users (a real `slapd`): filter injection in the login
//! name, an empty password (an LDAP "unauthenticated bind" succeeds as anonymous on many
//! directories), and a directory entry named like a local admin.

use filegate::auth::{AuthError, Proof};
use filegate::config::{Config, LdapGroupConfig, Redacted};
use filegate::identity::{ClientInfo, Protocol};

use crate::support::TestGateway;
use crate::support::sftp_client;
use crate::support::slapd::{BASE, Slapd};

fn use_directory(slapd: &Slapd, c: &mut Config) {
    let l = &mut c.auth.ldap;
    l.url = slapd.url();
    l.bind_dn = Slapd::SEARCH_DN.into();
    l.bind_password = Redacted(Slapd::SEARCH_PASSWORD.into());
    l.base_dn = format!("ou=people,{BASE}");
    l.admin_group = Some(Slapd::group_dn("admins"));
    l.groups = vec![LdapGroupConfig {
        dn: Slapd::group_dn("admins"),
        folder: "/".into(),
        level: "full".into(),
    }];
    l.check_interval_seconds = 3600;
}

async fn try_login(gw: &TestGateway, login: &str, pw: &str) -> Result<(), AuthError> {
    let client = ClientInfo::new(Some("127.0.0.1".parse().unwrap()));
    gw.gateway
        .core
        .auth
        .login(login, Proof::Password(pw), Protocol::Sftp, client)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn ldap_filter_injection_in_the_login_name_finds_nobody() {
    let Some(slapd) = Slapd::start("ldap filter injection") else {
        return;
    };
    slapd.user("dora", "dora-pw");
    slapd.group("admins", &["dora"]);
    let gw = TestGateway::start_with(|c| use_directory(&slapd, c)).await;
    for login in [
        "*",
        ")(uid=*",
        "dora)(|(uid=*",
        "*)(objectClass=*",
        "d*",
        "dora\\2a",
        "(uid=dora)",
    ] {
        assert_eq!(
            try_login(&gw, login, "dora-pw").await,
            Err(AuthError::Refused),
            "{login:?} signed in"
        );
    }
    assert!(
        sftp_client::login(gw.addr("sftp"), "*", "dora-pw")
            .await
            .is_none()
    );
    assert_eq!(
        gw.gateway.core.store.count_users().await.unwrap(),
        0,
        "no row was created"
    );
    assert!(
        try_login(&gw, "dora", "dora-pw").await.is_ok(),
        "the real name still works"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_empty_password_never_signs_in_an_ldap_user() {
    let Some(slapd) = Slapd::start("ldap empty password") else {
        return;
    };
    slapd.user("dora", "dora-pw");
    let gw = TestGateway::start_with(|c| use_directory(&slapd, c)).await;
    assert_eq!(try_login(&gw, "dora", "").await, Err(AuthError::Refused));
    assert!(
        sftp_client::login(gw.addr("sftp"), "dora", "")
            .await
            .is_none()
    );
    assert_eq!(gw.gateway.core.store.count_users().await.unwrap(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_directory_entry_named_like_a_local_admin_cannot_sign_in_as_them() {
    let Some(slapd) = Slapd::start("ldap local admin name") else {
        return;
    };
    slapd.user("boss", "directory-pw");
    slapd.group("admins", &["boss"]);
    let gw = TestGateway::start_with(|c| use_directory(&slapd, c)).await;
    let id = gw.admin("boss", "local-admin-pw").await;
    assert_eq!(
        try_login(&gw, "boss", "directory-pw").await,
        Err(AuthError::Refused)
    );
    assert_eq!(
        try_login(&gw, "BOSS", "directory-pw").await,
        Err(AuthError::Refused)
    );
    assert!(try_login(&gw, "boss", "local-admin-pw").await.is_ok());
    assert!(gw.gateway.core.store.ldap_link(id).await.unwrap().is_none());
    gw.stop().await;
}

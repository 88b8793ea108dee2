use super::*;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn loaded(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut config = Config::from_toml(text).map_err(ConfigError::Invalid)?;
    config.apply_env(|name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })?;
    config.fill_defaults();
    config.validate()?;
    Ok(config)
}

#[test]
fn an_empty_config_gets_safe_loopback_defaults() {
    let config = loaded("", &[]).unwrap();
    assert_eq!(config.sftp.listen, addr("127.0.0.1:2222"));
    assert_eq!(config.ftp.listen, addr("127.0.0.1:2121"));
    assert_eq!(config.webdav.listen, addr("127.0.0.1:8080"));
    assert_eq!(config.api.listen, addr("127.0.0.1:8081"));
    assert_eq!(config.ftp.implicit_listen, None);
    assert_eq!(config.ftp.passive_range(), 50000..=50099);
    assert_eq!(config.ftp.require_tls, RequireTls::Auto);
    assert!(!config.ftp.tls_required(), "auto on loopback");
    assert_eq!(config.server.log_format, LogFormat::Text);
    assert_eq!(config.server.database_url, "sqlite://data/filegate.db");
    assert_eq!(config.server.storage_dir, PathBuf::from("data/files"));
    assert!(config.auth.lockout.enabled);
}

#[test]
fn the_shipped_config_file_is_valid() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/filegate.toml"))
            .unwrap();
    let config = loaded(&text, &[]).unwrap();
    assert_eq!(config.ftp.listen, addr("127.0.0.1:2121"));
    assert_eq!(config.webdav.listen, addr("127.0.0.1:8080"));
    assert_eq!(
        config.ftp.passive_host, None,
        "an empty string is no address"
    );
    assert_eq!(config.ftp.implicit_listen, None);
}

#[test]
fn environment_overrides_win_over_the_file() {
    let config = loaded(
        "[server]\ndata_dir = \"/x\"\n[sftp]\nlisten = \"127.0.0.1:1\"",
        &[
            ("FILEGATE_DATA_DIR", "/y"),
            ("FILEGATE_SFTP_LISTEN", "127.0.0.1:0"),
            ("FILEGATE_DATABASE_URL", "postgres://h/db"),
        ],
    )
    .unwrap();
    assert_eq!(config.server.data_dir, PathBuf::from("/y"));
    assert_eq!(config.sftp.listen, addr("127.0.0.1:0"));
    assert_eq!(config.server.database_url, "postgres://h/db");
}

#[test]
fn unknown_settings_are_errors_not_silence() {
    let err = Config::from_toml("[sftp]\nlisten_addr = \"127.0.0.1:1\"").unwrap_err();
    assert!(err.contains("listen_addr"), "{err}");
}

#[test]
fn bad_values_are_refused_with_a_one_line_reason() {
    for (text, env, needle) in [
        ("[ftp]\nlisten = \"nowhere\"", vec![], "ftp.listen"),
        (
            "",
            vec![("FILEGATE_API_LISTEN", "8081")],
            "FILEGATE_API_LISTEN",
        ),
        (
            "[server]\ndatabase_url = \"mysql://x\"",
            vec![],
            "database_url",
        ),
        (
            "[sftp]\nlisten = \"127.0.0.1:9000\"\n[ftp]\nlisten = \"127.0.0.1:9000\"",
            vec![],
            "used by another",
        ),
        (
            "[auth.lockout]\nmax_failures_per_login = 0",
            vec![],
            "max_failures",
        ),
        (
            "[limits]\ntransfer_idle_timeout_seconds = 0",
            vec![],
            "limits.transfer_idle_timeout_seconds",
        ),
        (
            "[limits]\ntransfer_idle_timeout_seconds = 86401",
            vec![],
            "limits.transfer_idle_timeout_seconds",
        ),
        (
            "[server]\nlog_format = \"xml\"",
            vec![],
            "server.log_format",
        ),
        (
            "[ftp]\nrequire_tls = \"sometimes\"",
            vec![],
            "ftp.require_tls",
        ),
        (
            "[ftp]\npassive_ports = \"9-1\"",
            vec![],
            "ftp.passive_ports",
        ),
        (
            "[ftp]\npassive_ports = \"50000\"",
            vec![],
            "ftp.passive_ports",
        ),
        ("[ftp]\npassive_host = \"::1\"", vec![], "ftp.passive_host"),
        (
            "[ftp]\nimplicit_listen = \"990\"",
            vec![],
            "ftp.implicit_listen",
        ),
        (
            "[ftp]\nlisten = \"127.0.0.1:990\"\nimplicit_listen = \"127.0.0.1:990\"",
            vec![],
            "ftp.implicit_listen",
        ),
        (
            "[server]\ndata_dir = \"d\"\n\n[webdav]\n# a comment\nlisten = \"127.0.0.1\"",
            vec![],
            "webdav.listen",
        ),
        (
            "",
            vec![("FILEGATE_FTP_PASSIVE_PORTS", "70000-70001")],
            "FILEGATE_FTP_PASSIVE_PORTS",
        ),
        (
            "",
            vec![("FILEGATE_FTP_PASSIVE_HOST", "example.com")],
            "FILEGATE_FTP_PASSIVE_HOST",
        ),
    ] {
        let err = loaded(text, &env).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn the_container_config_is_valid_with_the_stacks_environment() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/compose.toml"))
        .unwrap();
    let env = [
        ("FILEGATE_DATA_DIR", "/srv/filegate/node-2"),
        ("FILEGATE_NODE_NAME", "filegate-2"),
        (
            "FILEGATE_DATABASE_URL",
            "postgres://filegate:pw@postgres:5432/filegate",
        ),
        ("FILEGATE_FTP_PASSIVE_PORTS", "50020-50039"),
    ];
    let config = loaded(&text, &env).unwrap();
    assert_eq!(config.server.node_name, "filegate-2");
    assert_eq!(config.ftp.passive_range(), 50020..=50039);
    assert_eq!(config.ftp.passive_host, Some(std::net::Ipv4Addr::LOCALHOST));
    assert!(config.ftp.tls_required(), "auto on 0.0.0.0");
    assert_eq!(
        config.sftp.host_key,
        PathBuf::from("/srv/filegate/ssh_host_ed25519_key")
    );
    assert_eq!(
        config.server.storage_dir,
        PathBuf::from("/srv/filegate/files")
    );
    let bad = loaded(&text, &[("FILEGATE_FTP_PASSIVE_PORTS", "50039-50020")]);
    assert!(
        bad.is_err(),
        "a reversed passive range from the environment is refused"
    );
}

#[test]
fn typed_values_parse_once() {
    let config = loaded(
        "[server]\nlog_format = \"json\"\n[ftp]\nlisten = \"[::1]:2121\"\nimplicit_listen = \"127.0.0.1:990\"\npassive_ports = \" 41000 - 41009 \"\npassive_host = \"10.0.0.5\"\nrequire_tls = \"always\"",
        &[],
    )
    .unwrap();
    assert_eq!(config.server.log_format, LogFormat::Json);
    assert_eq!(config.ftp.listen, addr("[::1]:2121"));
    assert_eq!(config.ftp.implicit_listen, Some(addr("127.0.0.1:990")));
    assert_eq!(config.ftp.passive_range(), 41000..=41009);
    assert_eq!(config.ftp.passive_ports.to_string(), "41000-41009");
    assert_eq!(
        config.ftp.passive_host,
        Some(std::net::Ipv4Addr::new(10, 0, 0, 5))
    );
    assert!(config.ftp.tls_required());
    let never = loaded(
        "[ftp]\nlisten = \"0.0.0.0:21\"\nrequire_tls = \"never\"",
        &[],
    )
    .unwrap();
    assert!(!never.ftp.tls_required());
}

#[test]
fn the_key_of_a_bad_value_is_found_in_the_text() {
    let text = "a = 1\n[ftp]\nlisten = \"x\"\n[auth.lockout]\n  enabled = \"no\"\n";
    assert_eq!(
        key_at(text, text.find("\"x\"").unwrap()).as_deref(),
        Some("ftp.listen")
    );
    assert_eq!(
        key_at(text, text.find("\"no\"").unwrap()).as_deref(),
        Some("auth.lockout.enabled")
    );
    assert_eq!(key_at(text, 4).as_deref(), Some("a"));
    assert_eq!(key_at(text, text.find("[ftp]").unwrap()), None);
}

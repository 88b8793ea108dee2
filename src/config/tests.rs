use super::*;

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
    assert_eq!(config.sftp.listen, "127.0.0.1:2222");
    assert_eq!(config.api.listen, "127.0.0.1:8081");
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
    assert_eq!(config.ftp.listen, "127.0.0.1:2121");
    assert_eq!(config.webdav.listen, "127.0.0.1:8080");
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
    assert_eq!(config.sftp.listen, "127.0.0.1:0");
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
        ("[server]\nlog_format = \"xml\"", vec![], "log_format"),
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
    assert_eq!(config.ftp.passive_ports, "50020-50039");
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

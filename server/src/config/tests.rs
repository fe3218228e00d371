use super::*;

#[test]
fn toml_with_apps_and_defaults() {
    let c: Config = toml::from_str(
        r#"
        port = 7000
        [[apps]]
        id = "1"
        key = "k"
        secret = "s"
        enable_client_events = false
        "#,
    )
    .unwrap();
    assert_eq!(c.port, 7000);
    assert_eq!(c.host, "0.0.0.0");
    assert!(!c.apps[0].enable_client_events);
    assert_eq!(c.apps[0].max_event_payload_kb, 10);
    assert_eq!(c.inactivity_timeout, 86_400);
    c.validate().unwrap();
}

#[test]
fn unknown_fields_are_rejected() {
    assert!(toml::from_str::<Config>("prot = 1").is_err());
}

#[test]
fn flags_override_and_default_app() {
    let cli = Cli {
        port: Some(1234),
        ..Cli::default()
    };
    let loaded = Config::load(&cli).unwrap();
    assert_eq!(loaded.config.port, 1234);
    assert!(loaded.uses_development_credentials);
    assert_eq!(loaded.config.apps[0].key, "app-key");
}

#[test]
fn partial_app_env_is_an_error() {
    let cli = Cli {
        app_id: Some("x".into()),
        ..Cli::default()
    };
    assert!(Config::load(&cli).is_err());
}

#[test]
fn absurd_timeouts_are_rejected() {
    let c = Config {
        activity_timeout: u64::MAX,
        ..Config::default()
    };
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("activity_timeout"), "{err}");
    assert!(Config::default().validate().is_ok());
}

#[test]
fn duplicate_keys_are_rejected() {
    let c = Config {
        apps: vec![AppConfig::development(), AppConfig::development()],
        ..Config::default()
    };
    assert!(c.validate().is_err());
}

#[test]
fn ids_with_separators_are_rejected() {
    let mut app = AppConfig::development();
    app.id = "a:b".into();
    let c = Config {
        apps: vec![app],
        ..Config::default()
    };
    assert!(c.validate().is_err());
    let c: Config = toml::from_str("adapter = \"redis\"\nredis_prefix = \"x y\"").unwrap();
    assert_eq!(c.adapter, AdapterKind::Redis);
    assert!(c.validate().is_err());
}

#[test]
fn origins() {
    let mut app = AppConfig::development();
    assert!(app.origin_allowed(Some("https://x.example")));
    app.allowed_origins = vec!["https://app.example".into()];
    assert!(app.origin_allowed(Some("https://app.example")));
    assert!(!app.origin_allowed(Some("https://evil.example")));
    assert!(app.origin_allowed(None));
}

#[test]
fn trusted_proxies_are_cidrs() {
    let c: Config =
        toml::from_str("trusted_proxies = [\"203.0.113.0/24\", \"2001:db8::/32\"]").unwrap();
    assert_eq!(c.trusted_proxies.len(), 2);
    assert!(toml::from_str::<Config>("trusted_proxies = [\"nonsense\"]").is_err());
    assert!(Config::default()
        .trusted_proxies
        .iter()
        .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
}

#[test]
fn the_admin_listener_beyond_loopback_needs_a_token() {
    assert!(Config::default().validate().is_ok());
    let open = Config {
        admin_host: "0.0.0.0".into(),
        ..Config::default()
    };
    let err = open.validate().unwrap_err().to_string();
    assert!(err.contains("admin_token"), "{err}");
    let guarded = Config {
        admin_token: Some("s3cret".into()),
        ..open
    };
    assert!(guarded.validate().is_ok());
    for host in ["localhost", "::1", "[::1]", "127.0.0.2"] {
        let c = Config {
            admin_host: host.into(),
            ..Config::default()
        };
        assert!(c.validate().is_ok(), "{host}");
    }
}

#[test]
fn sentinels_come_from_a_comma_separated_flag_and_need_a_master_name() {
    let cli = Cli::try_parse_from([
        "chorus",
        "--redis-sentinels",
        "redis://127.0.0.1:26379,redis://127.0.0.1:26380",
    ])
    .unwrap();
    let loaded = Config::load(&cli).unwrap();
    assert_eq!(loaded.config.redis_sentinels.len(), 2);
    assert_eq!(loaded.config.redis_sentinel_master, "mymaster");
    let mut c = loaded.config;
    c.redis_sentinel_master = " ".into();
    assert!(c.validate().is_err());
}

#[test]
fn cluster_nodes_come_from_a_comma_separated_flag_and_exclude_sentinels() {
    let cli = Cli::try_parse_from([
        "chorus",
        "--redis-cluster-nodes",
        "redis://127.0.0.1:7000,redis://127.0.0.1:7001",
    ])
    .unwrap();
    let loaded = Config::load(&cli).unwrap();
    assert_eq!(loaded.config.redis_cluster_nodes.len(), 2);
    let mut c = loaded.config;
    assert!(c.validate().is_ok());
    c.redis_sentinels = vec!["redis://127.0.0.1:26379".into()];
    assert!(c.validate().is_err());
    let c: Config = toml::from_str("redis_prefix = \"a{b}\"").unwrap();
    assert!(c.validate().is_err(), "braces would move the hash tag");
}

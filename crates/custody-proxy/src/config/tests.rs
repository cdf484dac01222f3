use super::*;

fn issues(yaml: &str) -> Vec<String> {
    match Config::from_yaml_str(yaml, "test.yaml") {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { issues, .. }) => {
            issues.iter().map(ToString::to_string).collect()
        }
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn defaults_are_valid() {
    let c = Config::defaults();
    assert_eq!(c.listen.tcp, Some("127.0.0.1:15080".parse().expect("addr")));
    assert_eq!(
        c.listen.admin,
        Some("127.0.0.1:15090".parse().expect("addr"))
    );
    assert!(
        c.listen
            .unix
            .as_ref()
            .is_some_and(|p| p.ends_with("custody.sock"))
    );
    let names: Vec<_> = c.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["openai", "anthropic"]);
    assert_eq!(c.routes[0].upstream.to_string(), "https://api.openai.com");
    assert_eq!(c.audit.roll_rows, 10_000);
    assert_eq!(c.audit.roll_age, Duration::from_secs(10));
    assert_eq!(c.audit.roll_bytes, 64 << 20);
    assert_eq!(c.audit.sink.local_dir(), Some(Path::new("./custody-audit")));
    assert_eq!(c.audit.spool_dir, Path::new("./custody-audit/.spool"));
    assert_eq!(c.audit.spool_max_bytes, 1 << 30);
    assert_eq!(
        c.audit.durability,
        custody_audit::spool::Durability::Process
    );
    assert_eq!(c.audit.on_full, custody_audit::OnFull::Reject);
    assert_eq!(c.limits.max_request_body, 8 << 20);
    assert_eq!(c.limits.max_decompression_ratio, 100);
    assert_eq!(c.runtime.worker_threads, 1);
}

#[test]
fn full_example_parses() {
    let c = Config::from_yaml_str(
        r#"
listen:
  unix: /run/custody/custody.sock
  tcp: null
  admin: 127.0.0.1:15091
routes:
  - name: crm
    prefix: /tools/crm
    upstream: http://crm.internal:8080/base/
    kind: http
upstream_tls:
  extra_ca_file: /etc/custody/ca.pem
audit:
  dir: /var/lib/custody/audit
  flush_rows: 500
  flush_interval: 2s
limits:
  max_request_body: 1MiB
  max_decompression_ratio: 20
shutdown:
  grace_period: 5s
runtime:
  worker_threads: 4
"#,
        "x",
    )
    .expect("valid");
    assert_eq!(c.listen.tcp, None);
    assert_eq!(
        c.listen.unix,
        Some(PathBuf::from("/run/custody/custody.sock"))
    );
    assert_eq!(c.routes.len(), 1);
    assert_eq!(c.routes[0].upstream.base_path, "/base");
    assert_eq!(c.routes[0].kind, RouteKind::Http);
    assert_eq!(c.limits.max_request_body, 1 << 20);
    assert_eq!(c.limits.max_decompression_ratio, 20);
    assert_eq!(c.shutdown.grace_period, Duration::from_secs(5));
    assert_eq!(c.runtime.worker_threads, 4);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let got = issues(
        r#"
listen:
  tcp: "not an address"
  sockett: /tmp/x
routes:
  - name: a
    prefix: tools
    upstream: ftp://x
    kind: openai
  - name: b
    prefix: /b
    upstream: http://b
    kind: grpc
  - name: a
    prefix: /c/
    upstream: http://c
    kind: http
audit:
  flush_rows: 0
  flush_interval: soon
limits:
  max_request_body: 8 parsecs
  max_decompression_ratio: 0
colour: blue
"#,
    );
    let joined = got.join("\n");
    for expected in [
        "listen.sockett: unknown field `sockett`",
        "routes[0].prefix: \"tools\" must start with '/'",
        "routes[0].upstream: unsupported scheme \"ftp\"",
        "routes[1].kind: unknown variant `grpc`",
        "routes[2].name: duplicate route name \"a\"",
        "routes[2].prefix: \"/c/\" must not end with '/'",
        "audit.flush_rows: must be at least 1",
        "audit.flush_interval: invalid duration \"soon\"",
        "limits.max_request_body: invalid size \"8 parsecs\"",
        "limits.max_decompression_ratio: must be at least 1",
        "colour: unknown section",
    ] {
        assert!(
            joined.contains(expected),
            "missing {expected:?} in:\n{joined}"
        );
    }
}

#[test]
fn semantic_problems_in_a_section_with_a_typo_elsewhere_are_still_reported() {
    let got = issues("listen: {tcp: 'nope'}\naudit: {flush_intervall: 1s}\n").join("\n");
    assert!(got.contains("listen.tcp: invalid socket address"), "{got}");
    assert!(
        got.contains("audit.flush_intervall: unknown field"),
        "{got}"
    );
}

#[test]
fn an_unknown_key_hides_nothing_in_its_section() {
    let got = issues(
        "audit: {roll: {age: soon, rowz: 1}, tyop: 1, flush_rows: many}\nlisten: {tcp: nope, sockett: x}\n",
    );
    for expected in [
        "audit.tyop: unknown field `tyop`",
        "audit.roll.rowz: unknown field `rowz`",
        "audit.flush_rows: invalid type: string \"many\"",
        "audit.roll.age: invalid duration \"soon\"",
        "listen.sockett: unknown field `sockett`",
        "listen.tcp: invalid socket address",
    ] {
        assert!(
            got.iter().any(|g| g.starts_with(expected)),
            "missing {expected:?} in {got:#?}"
        );
    }
}

#[test]
fn every_problem_of_the_price_table_is_reported() {
    let got = issues(
        "inspection:\n  prices:\n    models:\n      a: {input: -1, output: 1, cahced_input: 1}\n      b: {input: 1, output: -2}\n    aliases: {c: nope}\n    extra: 1\n",
    );
    for expected in [
        "inspection.prices.models.a.cahced_input: unknown field",
        "inspection.prices.extra: unknown field",
        "inspection.prices: model \"a\": input must be a finite number >= 0",
        "inspection.prices: model \"b\": output must be a finite number >= 0",
        "inspection.prices: alias \"c\" points to \"nope\"",
    ] {
        assert!(
            got.iter().any(|g| g.starts_with(expected)),
            "missing {expected:?} in {got:#?}"
        );
    }
}

#[test]
fn a_duplicate_key_is_reported_where_it_stands() {
    let got = issues("listen:\n  tcp: 127.0.0.1:1\naudit:\n  roll: {}\n  sink: ./a\n  roll: {}\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("audit: duplicate key `roll` at line 6 column 3"),
        "{got:?}"
    );
    let got = issues("listen: {}\nlisten: {}\n");
    assert!(
        got[0].contains("duplicate key `listen` at line 2 column 1"),
        "{got:?}"
    );
}

#[test]
fn rejects_no_listeners_and_bad_yaml() {
    assert!(
        issues("listen: {unix: null, tcp: null}")
            .join("")
            .contains("accept no traffic")
    );
    assert!(issues("listen: [").join("").contains("not valid YAML"));
    assert!(issues("- a\n- b").join("").contains("expected a mapping"));
    assert!(
        issues("upstream: {connect_timeout: 5}")
            .join("")
            .contains("needs a unit")
    );
}

#[test]
fn empty_routes_list_means_no_routes() {
    let c = Config::from_yaml_str("routes: []", "x").expect("valid");
    assert!(c.routes.is_empty());
}

#[test]
fn identity_section_and_route_modes() {
    let c = Config::from_yaml_str(
        r#"
identity:
  leeway: 30s
  issuers:
    - issuer: https://idp.example.com/
      audiences: [custody]
    - issuer: https://login.example.org
      audiences: [custody, api]
      jwks_file: /etc/custody/jwks.json
      algorithms: [RS256, EdDSA]
      claims: {org: tenant.id, roles: realm_access.roles, role: null}
routes:
  - {name: a, prefix: /a, upstream: 'http://a', kind: openai}
  - {name: b, prefix: /b, upstream: 'http://b', kind: http, identity: optional, token_from: authorization}
  - name: c
    prefix: /c
    upstream: http://c
    kind: http
    identity: off
    credentials: {header: x-api-key, value_file: /run/secrets/c}
"#,
        "x",
    )
    .expect("valid");
    let identity = c.identity.expect("identity");
    assert_eq!(identity.token_header.as_str(), "x-custody-user-token");
    assert_eq!(
        identity.issuers[0].keys,
        KeySource::Discovery(
            "https://idp.example.com/.well-known/openid-configuration"
                .parse()
                .expect("uri")
        )
    );
    assert_eq!(identity.issuers[0].policy.leeway, Duration::from_secs(30));
    assert_eq!(
        identity.issuers[1].keys,
        KeySource::File("/etc/custody/jwks.json".into())
    );
    let claims = &identity.issuers[1].policy.claims;
    assert_eq!(claims.org.as_deref(), Some("tenant.id"));
    assert_eq!(claims.role, None);
    assert_eq!(
        c.routes[0].identity,
        IdentityMode::Required,
        "required once issuers exist"
    );
    assert_eq!(c.routes[1].identity, IdentityMode::Optional);
    assert_eq!(c.routes[1].token_from, TokenFrom::Authorization);
    assert_eq!(c.routes[2].identity, IdentityMode::Off);
    let creds = c.routes[2].credentials.as_ref().expect("credentials");
    assert_eq!(creds.header.as_str(), "x-api-key");
    assert_eq!(creds.prefix, "");
}

#[test]
fn identity_problems_are_reported_with_paths() {
    let got = issues(
        r#"
identity:
  token_header: "bad header"
  issuers:
    - issuer: https://a
      audiences: []
      jwks_uri: ftp://x
    - issuer: https://b
      audiences: [x]
      jwks_file: /k
      jwks_uri: https://k
      algorithms: [HS256, none]
routes:
  - {name: r, prefix: /r, upstream: 'http://r', kind: http, credentials: {header: "x y", value_file: ""}}
"#,
    )
    .join("\n");
    for expected in [
        "identity.token_header: \"bad header\" is not a valid header name",
        "identity.issuers[0].audiences:",
        "identity.issuers[0].jwks_uri:",
        "identity.issuers[1]: choose one key source",
        "identity.issuers[1].algorithms[0]: \"HS256\" is not an accepted algorithm",
        "identity.issuers[1].algorithms[1]:",
        "routes[0].credentials.header:",
        "routes[0].credentials.value_file: must not be empty",
    ] {
        assert!(got.contains(expected), "missing {expected:?} in:\n{got}");
    }
    let got = issues("routes:\n  - {name: r, prefix: /r, upstream: 'http://r', kind: http, identity: required}\n").join("\n");
    assert!(
        got.contains("routes[0].identity: needs an identity section"),
        "{got}"
    );
    assert!(
        issues("identity: {issuers: []}")
            .join("")
            .contains("at least one issuer")
    );
}

#[test]
fn inspection_settings_and_their_problems() {
    let c = Config::from_yaml_str(
        r#"
inspection:
  max_parameters: 4KiB
  max_body: 1MiB
  max_event: 64KiB
  prices:
    models:
      acme-large: {input: 2, output: 6}
    aliases:
      acme-l: acme-large
routes:
  - name: crm
    prefix: /crm
    upstream: http://crm
    kind: http
    tools:
      - {method: post, path: "/contacts/{id}/notes", tool: "crm:contacts:note"}
  - {name: openai, prefix: /openai, upstream: 'http://o', kind: openai, force_stream_usage: true}
"#,
        "test.yaml",
    )
    .expect("valid");
    assert_eq!(c.inspection.limits.max_parameters_bytes, 4096);
    assert_eq!(c.inspection.limits.max_body_bytes, 1 << 20);
    assert_eq!(c.inspection.limits.max_event_bytes, 64 << 10);
    assert!(c.inspection.prices.lookup("acme-l").is_some());
    assert!(
        c.inspection.prices.lookup("gpt-4o-mini").is_some(),
        "built-ins kept"
    );
    let crm = &c.routes[0];
    let hit = crm
        .tools
        .find("POST", "/contacts/c-1/notes")
        .expect("mapped");
    assert_eq!(hit.tool, "crm:contacts:note");
    assert!(c.routes[1].force_stream_usage);

    let got = issues(
        r#"
inspection:
  max_parameters: 10
  max_body: lots
  prices: {models: {bad: {input: -1, output: 1}}}
routes:
  - name: crm
    prefix: /crm
    upstream: http://crm
    kind: http
    force_stream_usage: true
    tools:
      - {method: "GE T", path: "/a/{id", tool: ""}
      - {method: GET, path: "no-slash", tool: "t"}
  - {name: llm, prefix: /llm, upstream: 'http://o', kind: anthropic, tools: [{method: GET, path: /x, tool: t}]}
"#,
    )
    .join("\n");
    for expected in [
        "inspection.max_parameters: 10 bytes is outside",
        "inspection.max_body:",
        "inspection.prices: model \"bad\": input must be a finite number >= 0",
        "routes[0].force_stream_usage: applies to kind: openai routes",
        "routes[0].tools[0].tool: must not be empty",
        "routes[0].tools[0].method:",
        "routes[0].tools[0].path:",
        "routes[0].tools[1].path:",
        "routes[1].tools: tool mappings apply to kind: http routes, not anthropic",
    ] {
        assert!(got.contains(expected), "missing {expected:?} in:\n{got}");
    }
}

#[test]
fn safety_problems_are_reported_with_paths() {
    let got = issues(
        r#"
routes:
  - {name: crm, prefix: /crm, upstream: 'http://crm', kind: http}
safety:
  detectors: {EMALI: redact}
  routes: {nope: {detectors: {EMAIL: log}}}
  custom: [{name: MRN, regex: '('}]
"#,
    )
    .join("\n");
    for expected in [
        "safety.detectors.EMALI",
        "safety.routes.nope: no route has this name",
        "MRN",
    ] {
        assert!(got.contains(expected), "missing {expected:?} in:\n{got}");
    }
    let c = Config::from_yaml_str(
        "routes: [{name: crm, prefix: /crm, upstream: 'http://crm', kind: http}]\nsafety: {detectors: {CARD: block}, routes: {crm: {detectors: {CARD: log}}}}\n",
        "test.yaml",
    )
    .expect("valid");
    let card = custody_safety::Kind::Card;
    assert_eq!(
        c.safety.action(Some("crm"), None, &card),
        Some(custody_safety::Action::Log)
    );
    assert_eq!(
        c.safety.action(Some("other"), None, &card),
        Some(custody_safety::Action::Block)
    );
}

#[test]
fn session_problems_are_reported_with_paths() {
    let got = issues(
        "sessions: {header: 'Bad Header', idle_gap: 2h, max_duration: 1h, pending_ttl: 10, max_sessions: 0, nope: 1}\n",
    )
    .join("\n");
    assert!(got.contains("sessions.nope: unknown field `nope`"), "{got}");
    let got = issues(
        "sessions: {header: 'Bad Header', idle_gap: 2h, max_duration: 1h, pending_ttl: 10, max_sessions: 0}\n",
    )
    .join("\n");
    for expected in [
        "sessions.header",
        "sessions.max_duration: must not be shorter than idle_gap",
        "sessions.pending_ttl: a duration needs a unit",
        "sessions.max_sessions",
    ] {
        assert!(got.contains(expected), "missing {expected:?} in:\n{got}");
    }
    let c = Config::from_yaml_str(
        "sessions: {header: X-Conversation-Id, idle_gap: 5m}\n",
        "t.yaml",
    )
    .expect("valid");
    assert_eq!(c.sessions.header, "x-conversation-id");
    assert_eq!(c.sessions.idle_gap, std::time::Duration::from_secs(300));
    assert_eq!(c.sessions.max_sessions, 100_000);
}

#[test]
fn the_documented_whole_file_is_valid_and_means_the_defaults() {
    let doc = include_str!("../../../../docs/configuration.md");
    let start = doc
        .find("## The whole file, with defaults\n\n```yaml\n")
        .expect("section");
    let body = &doc[start..];
    let body = &body[body.find("```yaml\n").expect("fence") + 8..];
    let yaml = &body[..body.find("```").expect("end")];
    let c = Config::from_yaml_str(yaml, "configuration.md").expect("the documented file is valid");
    let d = Config::defaults();
    assert!(c.identity.is_none() && c.policy.is_none());
    assert_eq!(c.anomalies, d.anomalies);
    assert_eq!(c.listen.tcp, d.listen.tcp);
    // Copied as written, the file listens where the defaults do (no literal `<uid>`).
    assert_eq!(c.listen.unix, d.listen.unix);
    assert!(!yaml.contains("unix: /tmp/custody-<uid>"));
    assert_eq!(c.limits.max_request_body, d.limits.max_request_body);
    assert_eq!(
        c.limits.max_decompression_ratio,
        d.limits.max_decompression_ratio
    );
    assert_eq!(c.limits.buffer_budget, d.limits.buffer_budget);
    assert_eq!(c.limits.http2, d.limits.http2);
    assert_eq!(c.limits.max_connections, d.limits.max_connections);
    assert_eq!(c.inspection.limits, d.inspection.limits);
    assert_eq!(c.routes.len(), d.routes.len());
    assert_eq!(c.audit.sink, d.audit.sink);
    assert_eq!(c.audit.spool_dir, d.audit.spool_dir);
    assert_eq!(c.audit.spool_max_bytes, d.audit.spool_max_bytes);
    assert_eq!(
        (c.audit.roll_rows, c.audit.roll_bytes, c.audit.roll_age),
        (d.audit.roll_rows, d.audit.roll_bytes, d.audit.roll_age)
    );
    assert_eq!(
        (c.audit.durability, c.audit.on_full),
        (d.audit.durability, d.audit.on_full)
    );
}

#[test]
fn audit_sink_spool_and_roll() {
    let c = Config::from_yaml_str(
        r#"
audit:
  sink: s3://bucket/audit/prod
  durability: fsync
  on_full: drop
  spool: {dir: /var/lib/custody/spool, max_bytes: 256MiB}
  roll: {rows: 500, bytes: 8MiB, age: 2s}
  s3: {endpoint: "http://127.0.0.1:9000", region: eu-west-1, path_style: true}
"#,
        "x",
    )
    .expect("valid");
    let a = &c.audit;
    assert_eq!(a.sink.to_string(), "s3://bucket/audit/prod");
    assert_eq!(a.durability, custody_audit::spool::Durability::Fsync);
    assert_eq!(a.on_full, custody_audit::OnFull::Drop);
    assert_eq!(a.spool_dir, Path::new("/var/lib/custody/spool"));
    assert_eq!(a.spool_max_bytes, 256 << 20);
    assert_eq!((a.roll_rows, a.roll_bytes), (500, 8 << 20));
    assert_eq!(a.roll_age, Duration::from_secs(2));
    assert_eq!(a.s3.path_style, Some(true));

    // A remote sink spools in ./custody-spool unless told otherwise; the older
    // names still work.
    let c = Config::from_yaml_str("audit: {sink: 'gs://bkt'}\n", "x").expect("valid");
    assert_eq!(c.audit.spool_dir, Path::new("./custody-spool"));
    // ... and rolls a file every 5 minutes or 100,000 rows, not every 10 s.
    assert_eq!(
        (c.audit.roll_rows, c.audit.roll_bytes, c.audit.roll_age),
        (100_000, 64 << 20, Duration::from_secs(300))
    );
    let c = Config::from_yaml_str("audit: {dir: /a, flush_rows: 7, flush_interval: 3s}\n", "x")
        .expect("valid");
    assert_eq!(c.audit.sink.local_dir(), Some(Path::new("/a")));
    assert_eq!(c.audit.spool_dir, Path::new("/a/.spool"));
    assert_eq!(
        (c.audit.roll_rows, c.audit.roll_age),
        (7, Duration::from_secs(3))
    );

    let got = issues(
        r#"
audit:
  sink: "ftp://x"
  dir: /a
  durability: sometimes
  on_full: panic
  spool: {max_bytes: 1KiB}
  roll: {rows: 0}
  flush_rows: 5
  s3: {endpoint: "127.0.0.1:9000", access_key_id: AKIA}
"#,
    )
    .join("\n");
    for expected in [
        "audit.dir: an older name of audit.sink",
        "audit.sink: audit sink",
        "audit.durability: unknown durability \"sometimes\"",
        "audit.on_full: unknown value \"panic\"",
        "audit.spool.max_bytes: must be at least 64KiB",
        "audit.flush_rows: an older name of audit.roll.rows",
        "audit.roll.rows: must be at least 1",
        "audit.s3: applies only to an s3:// audit.sink",
        "audit.s3.endpoint: must start with http:// or https://",
        "audit.s3: access_key_id and secret_access_key_file go together",
    ] {
        assert!(got.contains(expected), "missing {expected:?} in:\n{got}");
    }
}

#[test]
fn intercept_section_and_route_hosts() {
    // Off by default, and with `intercept: null`.
    assert!(Config::defaults().intercept.is_none());
    assert_eq!(Config::defaults().routes[0].hosts, ["api.openai.com"]);
    assert!(
        Config::from_yaml_str("intercept: null", "x")
            .expect("valid")
            .intercept
            .is_none()
    );
    let c = Config::from_yaml_str("intercept: {}", "x").expect("valid");
    let i = c.intercept.expect("on");
    assert_eq!(i.ca, CaSource::Generate);
    assert_eq!(i.others, Others::Tunnel);
    assert_eq!(i.export_dir, None);
    assert_eq!(i.leaf_cache_size, 1024);
    assert_eq!(i.leaf_lifetime, Duration::from_secs(86400));
    let c = Config::from_yaml_str(
        r#"
routes:
  - {name: a, prefix: /a, upstream: 'https://a.example', kind: openai, hosts: [API.OpenAI.com.]}
  - {name: b, prefix: /b, upstream: 'https://b.example', kind: http, hosts: [tools.internal, 10.0.0.7]}
intercept:
  ca: {cert_file: /s/tls.crt, key_file: /s/tls.key, export_dir: /run/custody/ca}
  others: deny
  leaf_cache_size: 10
  leaf_lifetime: 1h
"#,
        "x",
    )
    .expect("valid");
    assert_eq!(c.routes[0].hosts, ["api.openai.com"]);
    assert_eq!(c.routes[1].hosts, ["tools.internal", "10.0.0.7"]);
    let i = c.intercept.expect("on");
    assert_eq!(
        i.ca,
        CaSource::Files {
            cert_file: "/s/tls.crt".into(),
            key_file: "/s/tls.key".into()
        }
    );
    assert_eq!(i.export_dir.as_deref(), Some(Path::new("/run/custody/ca")));
    assert_eq!(i.others, Others::Deny);
    assert_eq!(i.leaf_lifetime, Duration::from_secs(3600));
}

#[test]
fn intercept_problems_are_reported_with_paths() {
    let got = issues(
        r#"
routes:
  - {name: a, prefix: /a, upstream: 'https://a.example', kind: openai, hosts: [api.openai.com, 'https://x.example', 'x.example:443']}
  - {name: b, prefix: /b, upstream: 'https://b.example', kind: http, hosts: [API.openai.com, '*.example']}
intercept:
  ca: {cert_file: /s/tls.crt}
  others: maybe
"#,
    );
    let joined = got.join("\n");
    for expected in [
        "routes[0].hosts[1]:",
        "routes[0].hosts[2]:",
        "routes[1].hosts[0]: api.openai.com is already claimed by route \"a\"",
        "routes[1].hosts[1]:",
        "intercept.others: unknown variant `maybe`",
    ] {
        assert!(joined.contains(expected), "{expected} in:\n{joined}");
    }
    let got = issues("intercept: {ca: {key_file: /k}, leaf_cache_size: 0, leaf_lifetime: 1m}");
    assert_eq!(
        got,
        [
            "intercept.ca.cert_file: needed with intercept.ca.key_file (or set neither to generate a CA at start)",
            "intercept.leaf_cache_size: 0 is out of range 1..=1000000",
            "intercept.leaf_lifetime: must be between 10m and 397d",
        ]
    );
}

#[test]
fn the_documented_intercept_section_is_valid() {
    let doc = include_str!("../../../../docs/configuration.md");
    let start = doc.find("```yaml\nintercept:\n").expect("intercept block");
    let body = &doc[start + 8..];
    let yaml = &body[..body.find("```").expect("end")];
    let c = Config::from_yaml_str(yaml, "configuration.md").expect("valid");
    let i = c.intercept.expect("on");
    assert_eq!((i.leaf_cache_size, i.ca), (1024, CaSource::Generate));
    let doc = include_str!("../../../../docs/interception.md");
    let start = doc.find("```yaml\n").expect("block");
    let body = &doc[start + 8..];
    let yaml = &body[..body.find("```").expect("end")];
    let c = Config::from_yaml_str(yaml, "interception.md").expect("valid");
    assert_eq!(c.routes[1].hosts, ["api.anthropic.com"]);
}

#[test]
fn buffer_budget_and_http2_limits() {
    let d = Config::defaults();
    assert_eq!(d.limits.buffer_budget, 64 << 20);
    assert_eq!(d.limits.http2.max_concurrent_streams, 100);
    assert_eq!(d.limits.http2.max_header_list_size, 64 << 10);
    assert_eq!(
        d.limits.http2.keep_alive_interval,
        Some(std::time::Duration::from_secs(30))
    );
    let c = Config::from_yaml_str(
        "limits:\n  buffer_budget: 256MiB\n  http2: {max_concurrent_streams: 8, max_header_list_size: 16KiB, keep_alive_interval: \"off\", keep_alive_timeout: 3s, max_pending_reset_streams: 5}\n",
        "t.yaml",
    )
    .expect("valid");
    assert_eq!(c.limits.buffer_budget, 256 << 20);
    let h2 = &c.limits.http2;
    assert_eq!(
        (
            h2.max_concurrent_streams,
            h2.max_header_list_size,
            h2.max_pending_reset_streams
        ),
        (8, 16 << 10, 5)
    );
    assert_eq!(h2.keep_alive_interval, None);
    assert_eq!(h2.keep_alive_timeout, std::time::Duration::from_secs(3));
    let got = Config::from_yaml_str("limits:\n  buffer_budget: 4MiB\n", "t.yaml")
        .expect_err("invalid")
        .to_string();
    for expected in [
        "limits.buffer_budget: 4194304 bytes is less than limits.max_request_body (8388608 bytes)",
        "limits.buffer_budget: 4194304 bytes is less than limits.max_redacted_response (16777216 bytes)",
    ] {
        assert!(got.contains(expected), "missing {expected:?} in:\n{got}");
    }
    let got = Config::from_yaml_str(
        "limits:\n  http2: {max_concurrent_streams: 0, max_header_list_size: 100, keep_alive_timeout: 100ms}\n",
        "t.yaml",
    )
    .expect_err("invalid")
    .to_string();
    for expected in [
        "limits.http2.max_concurrent_streams: must be at least 1",
        "limits.http2.max_header_list_size: 100 bytes is out of range 1KiB..=16MiB",
        "limits.http2.keep_alive_timeout: must be at least 1s",
    ] {
        assert!(got.contains(expected), "missing {expected:?} in:\n{got}");
    }
}

#[test]
fn audit_digests() {
    let c = Config::from_yaml_str("audit:\n  digests: {signing_key_file: /k.pem}\n", "t.yaml")
        .expect("valid");
    let d = c.audit.digests.expect("digests");
    assert_eq!(d.interval, std::time::Duration::from_secs(3600));
    assert_eq!(d.signing_key_file, std::path::PathBuf::from("/k.pem"));
    assert!(Config::defaults().audit.digests.is_none());
    let got = Config::from_yaml_str("audit:\n  digests: {interval: 500ms}\n", "t.yaml")
        .expect_err("invalid")
        .to_string();
    for expected in [
        "audit.digests.interval: must be at least 1s",
        "audit.digests.signing_key_file: required",
    ] {
        assert!(got.contains(expected), "missing {expected:?} in:\n{got}");
    }
}

#[test]
fn audit_s3_object_lock() {
    let c = Config::from_yaml_str(
        "audit:\n  sink: s3://audit-bucket/p\n  s3: {object_lock: true}\n",
        "t.yaml",
    )
    .expect("valid");
    assert!(c.audit.s3.object_lock);
    assert!(
        c.audit
            .ship_config()
            .expect("no files to read")
            .s3
            .object_lock
    );
    assert!(!Config::defaults().audit.s3.object_lock);
}

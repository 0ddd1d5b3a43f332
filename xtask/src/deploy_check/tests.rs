//! Unit tests of `deploy_check`.

use super::*;

fn summary(budget_seconds: u64, max_connections: u64) -> ConfigSummary {
    ConfigSummary {
        startup_deadline: Duration::from_secs(60),
        shutdown_budget: Duration::from_secs(budget_seconds),
        max_connections,
        max_held: max_connections,
    }
}

/// The shape of deploy/cloudrun/service.yaml, as PyYAML reads it.
fn cloud_run_service() -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "chat"},
        "spec": {"template": {
            "metadata": {"annotations": {"run.googleapis.com/cpu-throttling": "false"}},
            "spec": {
                "containerConcurrency": 200,
                "timeoutSeconds": 3600,
                "containers": [
                    {
                        "name": "warmgate",
                        "ports": [{"name": "http1", "containerPort": 8080}],
                        "env": [{"name": "WARMGATE_CONFIG", "value": "/etc/warmgate/warmgate.toml"}],
                        "startupProbe": {"tcpSocket": {"port": 8080}},
                        "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/warmgate"}],
                    },
                    {"name": "backend", "image": "backend"},
                ],
                "volumes": [{"name": "config", "secret": {
                    "secretName": "warmgate-config",
                    "items": [{"key": "latest", "path": "warmgate.toml"}],
                }}],
            },
        }},
    })
}

fn check_service(service: &Value, max_connections: u64) -> Vec<String> {
    check_service_with(service, summary(10, max_connections))
}

fn check_service_with(service: &Value, config: ConfigSummary) -> Vec<String> {
    let dir = Path::new("/deploy/cloudrun");
    let configs = BTreeMap::from([(dir.join("warmgate.toml"), config)]);
    let embedded = (PathBuf::from("/default.toml"), summary(10, 10_000));
    check_cloud_run(service, dir, &configs, &embedded)
}

/// The shape of deploy/cloudrun/warmgate-only.yaml: no config, so the
/// embedded plan, and a /startupz startup probe.
fn cloud_run_alone() -> Value {
    let mut service = cloud_run_service();
    let spec = &mut service["spec"]["template"]["spec"];
    spec["volumes"] = json!([]);
    spec["containers"] = json!([{
        "name": "warmgate",
        "ports": [{"name": "http1", "containerPort": 8080}],
        "startupProbe": {
            "httpGet": {"path": "/startupz", "port": 8080},
            "periodSeconds": 1,
            "failureThreshold": 90,
        },
        "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}},
    }]);
    service
}

/// The shape of deploy/kubernetes/standalone/deployment.yaml.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {"template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "warmgate"}},
            "spec": {
                "terminationGracePeriodSeconds": 15,
                "containers": [{
                    "name": "warmgate",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "env": [{"name": "WARMGATE_CONFIG", "value": "/etc/warmgate/warmgate.toml"}],
                    "startupProbe": {
                        "httpGet": {"path": "/startupz", "port": "http"},
                        "periodSeconds": 1,
                        "failureThreshold": 90,
                    },
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                    "livenessProbe": {"httpGet": {"path": "/livez", "port": "http"}},
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"},
                        "limits": {"memory": "256Mi"},
                    },
                    "securityContext": {
                        "runAsNonRoot": true,
                        "readOnlyRootFilesystem": true,
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/warmgate"}],
                }],
                "volumes": [{"name": "config", "configMap": {"name": "warmgate-config"}}],
            },
        }},
    })
}

fn check_with_budget(deployment: &Value, budget_seconds: u64) -> Vec<String> {
    check_with_config(deployment, summary(budget_seconds, 10_000))
}

fn check_with_config(deployment: &Value, config: ConfigSummary) -> Vec<String> {
    let file = Path::new("deploy/kubernetes/sidecar/warmgate.toml");
    let lookup = |name: &str, key: &str| {
        (name == "warmgate-config" && key == "warmgate.toml").then_some((file, &config))
    };
    check_deployment(deployment, &lookup)
}

#[test]
fn the_manifests_as_shipped_pass() {
    assert_eq!(
        check_service(&cloud_run_service(), 1000),
        Vec::<String>::new()
    );
    assert_eq!(check_with_budget(&deployment(), 10), Vec::<String>::new());
    assert_eq!(
        check_service(&cloud_run_alone(), 1000),
        Vec::<String>::new()
    );
}

/// A change to a manifest, and what the check must then say.
type Drift = (&'static str, fn(&mut Value));

/// Applies each drift to a fresh manifest and expects `check` to name it.
fn assert_each_fails(
    cases: &[Drift],
    manifest: fn() -> Value,
    check: impl Fn(&Value) -> Vec<String>,
) {
    for (expected, drift) in cases {
        let mut drifted = manifest();
        drift(&mut drifted);
        let problems = check(&drifted);
        assert!(
            problems.iter().any(|problem| problem.contains(expected)),
            "expected a problem with {expected:?}, got {problems:?}"
        );
    }
}

#[test]
fn a_drifted_cloud_run_service_fails() {
    let cases: [Drift; 8] = [
        ("longer than the 240 s Cloud Run allows", |s| {
            s["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["failureThreshold"] =
                json!(241)
        }),
        ("cpu-throttling", |s| {
            s["spec"]["template"]["metadata"]["annotations"]["run.googleapis.com/cpu-throttling"] =
                json!("true")
        }),
        ("makes warmgate wait", |s| {
            s["spec"]["template"]["metadata"]["annotations"]["run.googleapis.com/container-dependencies"] =
                json!(r#"{"warmgate":["backend"]}"#)
        }),
        ("timeoutSeconds", |s| {
            s["spec"]["template"]["spec"]["timeoutSeconds"] = json!(7200)
        }),
        ("containers with ports", |s| {
            s["spec"]["template"]["spec"]["containers"][1]["ports"] =
                json!([{"containerPort": 9000}])
        }),
        ("livenessProbe gets \"/readyz\"", |s| {
            s["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"] =
                json!("/readyz")
        }),
        ("no volume is mounted at /etc/warmgate", |s| {
            s["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] =
                json!("/config")
        }),
        (
            "above the max_connections of /deploy/cloudrun/warmgate.toml (500)",
            |s| s["spec"]["template"]["spec"]["containerConcurrency"] = json!(1000),
        ),
    ];
    assert_each_fails(&cases, cloud_run_service, |service| {
        check_service(service, 500)
    });
}

#[test]
fn a_drifted_deployment_fails() {
    let cases: [Drift; 4] = [
        ("readinessProbe gets \"/livez\"", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] =
                json!("/livez")
        }),
        ("readOnlyRootFilesystem", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] =
                json!(false)
        }),
        ("resources.limits.memory", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = json!({})
        }),
        ("not generated from a warmgate config", |d| {
            d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = json!("other")
        }),
    ];
    assert_each_fails(&cases, deployment, |deployment| {
        check_with_budget(deployment, 10)
    });
}

#[test]
fn cloud_run_concurrency_must_not_exceed_max_held() {
    let config = ConfigSummary {
        max_held: 100,
        ..summary(10, 1000)
    };
    let problems = check_service_with(&cloud_run_service(), config);
    assert_eq!(
        problems,
        [
            "containerConcurrency 200 is above the max_held of /deploy/cloudrun/warmgate.toml (100): Cloud Run would send clients that warmgate refuses"
        ]
    );
}

#[test]
fn a_startupz_probe_must_wait_out_the_startup_deadline() {
    // The sidecar's first version: 60 s of probing for a 5 m deadline.
    let mut short = deployment();
    short["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["failureThreshold"] =
        json!(60);
    let config = ConfigSummary {
        startup_deadline: Duration::from_secs(300),
        ..summary(10, 10_000)
    };
    let problems = check_with_config(&short, config.clone());
    assert_eq!(
        problems,
        [
            "container warmgate: the /startupz startupProbe gives up after 60 s (initialDelaySeconds 0 + periodSeconds 1 × failureThreshold 60), shorter than the startup_deadline of deploy/kubernetes/sidecar/warmgate.toml (300 s) plus a 10 s margin: the platform would restart warmgate mid-start"
        ]
    );
    // 5 s of delay and 2 s × 155 wait 315 s: enough.
    let probe = &mut short["spec"]["template"]["spec"]["containers"][0]["startupProbe"];
    probe["initialDelaySeconds"] = json!(5);
    probe["periodSeconds"] = json!(2);
    probe["failureThreshold"] = json!(155);
    assert_eq!(
        check_with_config(&short, config.clone()),
        Vec::<String>::new()
    );
    // A TCP probe passes as soon as warmgate listens: no window to check.
    short["spec"]["template"]["spec"]["containers"][0]["startupProbe"] =
        json!({"tcpSocket": {"port": "http"}});
    assert_eq!(check_with_config(&short, config), Vec::<String>::new());

    // On Cloud Run without a config, the embedded plan's deadline (60 s).
    let mut alone = cloud_run_alone();
    alone["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["failureThreshold"] =
        json!(60);
    let problems = check_service(&alone, 1000);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("gives up after 60 s")
            && problems[0].contains("the startup_deadline of /default.toml (60 s)"),
        "{problems:?}"
    );
}

#[test]
fn an_ingress_must_name_a_service_port() {
    let service = json!({"kind": "Service", "metadata": {"name": "warmgate"},
        "spec": {"ports": [{"name": "http", "port": 80}]}});
    let ingress = |backend: Value| {
        json!({"kind": "Ingress", "spec": {"rules": [{"http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": backend}},
        ]}}]}})
    };
    let check = |backend: Value| {
        check_ingresses(&[
            (PathBuf::from("base/service.yaml"), vec![service.clone()]),
            (
                PathBuf::from("ingress/ingress.yaml"),
                vec![ingress(backend)],
            ),
        ])
    };
    assert_eq!(
        check(json!({"name": "warmgate", "port": {"name": "http"}})),
        Vec::<String>::new()
    );
    assert_eq!(
        check(json!({"name": "warmgate", "port": {"number": 80}})),
        Vec::<String>::new()
    );
    assert!(
        check(json!({"name": "warmgate", "port": {"number": 8080}}))[0]
            .contains("has no such port")
    );
    assert!(
        check(json!({"name": "chat", "port": {"name": "http"}}))[0]
            .contains("no kustomization under deploy/kubernetes applies")
    );
}

#[test]
fn the_grace_period_must_exceed_the_shutdown_budget() {
    let problems = check_with_budget(&deployment(), 15);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with(
        "terminationGracePeriodSeconds is 15, expected more than the config's shutdown_budget (15s)"
    ));
}

#[test]
fn the_revision_is_validated_as_a_pod_without_the_knative_keys() {
    let pod = revision_as_pod(&cloud_run_service());
    assert_eq!(pod["kind"], "Pod");
    assert!(pod["spec"]["containerConcurrency"].is_null());
    assert!(pod["spec"]["timeoutSeconds"].is_null());
    assert_eq!(pod["spec"]["containers"][1]["name"], "backend");
}

#[test]
fn check_config_output_is_read() {
    let description = "gate\n  startup_deadline = 5m\n  shutdown_budget = 1m 30s\n  shutdown_delay = 1s (after SIGTERM, not SIGINT)\n  max_connections = 1000\n  max_held = 800\n";
    assert_eq!(
        parse_summary(description).unwrap(),
        ConfigSummary {
            startup_deadline: Duration::from_secs(300),
            shutdown_budget: Duration::from_secs(90),
            max_connections: 1000,
            max_held: 800,
        }
    );
    for missing in ["startup_deadline", "max_held"] {
        let without: String = description
            .lines()
            .filter(|line| !line.contains(missing))
            .map(|line| format!("{line}\n"))
            .collect();
        let error = parse_summary(&without).unwrap_err().to_string();
        assert_eq!(error, format!("check-config printed no `{missing}`"));
    }
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("10 s"), None);
    assert_eq!(parse_duration(""), None);
}

#[test]
fn the_unit_is_verified_running_the_built_program_on_the_example_config() {
    let unit = "[Service]\nType=notify\nExecStart=/usr/local/bin/warmgate --config /etc/warmgate/warmgate.toml\n";
    let copy = unit_for_verify(
        unit,
        Path::new("/build/warmgate"),
        Path::new("/repo/deploy/systemd/warmgate.toml"),
    )
    .unwrap();
    assert_eq!(
        copy,
        "[Service]\nType=notify\nExecStart=/build/warmgate --config /repo/deploy/systemd/warmgate.toml\n"
    );
    // A unit that runs something else, or twice, is a problem, not a copy.
    for drifted in [
        "[Service]\nExecStart=/usr/bin/warmgate --config /etc/warmgate/warmgate.toml\n",
        "[Service]\nExecStart=/usr/local/bin/warmgate\n",
        "[Service]\nExecStart=/usr/local/bin/warmgate --config /etc/warmgate/warmgate.toml\nExecStart=/bin/true\n",
    ] {
        let problem = unit_for_verify(drifted, Path::new("/w"), Path::new("/c")).unwrap_err();
        assert_eq!(
            problem,
            "expected one `ExecStart=/usr/local/bin/warmgate --config /etc/warmgate/warmgate.toml` line",
            "{drifted}"
        );
    }
}

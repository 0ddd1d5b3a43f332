//! `cargo xtask deploy-check`: the deployment files under `deploy/` are
//! valid and say what `docs/deploy.md` says they do.
//!
//! - Every warmgate config (`deploy/**/*.toml`) passes the release
//!   binary's `warmgate check-config`.
//! - Every Kubernetes manifest that a kustomization under
//!   `deploy/kubernetes/` applies passes `kubernetes-validate` in strict
//!   mode (unknown keys are errors) against the oldest and the newest
//!   Kubernetes the files are meant for ([`KUBERNETES_VERSIONS`]), and its
//!   Deployments keep the probes, the grace period, the security context
//!   and the config mount that matter, and a `/startupz` startup probe
//!   waits out the config's `startup_deadline`. Every Ingress sends its
//!   clients to a Service port that one of the kustomizations applies.
//! - The Cloud Run services (`deploy/cloudrun/*.yaml`) are Knative
//!   `serving.knative.dev/v1` Services, a kind kubernetes-validate has no
//!   schema for: it prints a warning and passes them. So their revision's
//!   pod spec is validated as a core `Pod` instead (less the two keys only
//!   Knative has), and the Cloud Run keys are checked here one by one,
//!   against the mounted config or, without one, the embedded plan
//!   ([`EMBEDDED_PLAN`]).
//!
//! - The systemd unit (`deploy/systemd/warmgate.service`) passes
//!   `systemd-analyze verify`, on a copy whose `ExecStart` runs the release
//!   binary with the example config beside the unit (verify needs the
//!   program to exist), and names that config's path as the docs say.
//!
//! Reading YAML is left to PyYAML in the tools' virtualenv, which turns each
//! file into JSON; the checks themselves are plain functions of that JSON,
//! so a unit test can break a manifest and see the check fail. This module
//! does not talk to a cluster or to Google Cloud, and does not render
//! kustomizations: it follows their `resources` and `configMapGenerator`.
//!
//! Long because it is one checklist: each platform's keys and the
//! cross-checks between the manifests and the warmgate configs they ship,
//! in the order `docs/deploy.md` explains them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::backend;
use crate::command::workspace_root;
use crate::server::{self, target_dir};

/// The Kubernetes versions every manifest is validated against: the oldest
/// the files are written for (sidecar init containers are on by default
/// from 1.29) and the newest kubernetes-validate knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.31.0", "1.37.0"];

/// Cloud Run sends SIGKILL this long after SIGTERM.
const CLOUD_RUN_KILL_AFTER: Duration = Duration::from_secs(10);

/// Cloud Run gives a startup probe at most this long in all
/// (`initialDelaySeconds` + `periodSeconds` × `failureThreshold`).
const CLOUD_RUN_MAX_STARTUP_PROBE: Duration = Duration::from_secs(240);

/// How much longer than the config's `startup_deadline` a `/startupz`
/// startup probe must wait. At the deadline the gate turns `failed` and
/// `/startupz` fails on its own; a shorter probe would have the platform
/// restart warmgate while the backend is still within its time.
const STARTUP_PROBE_MARGIN: Duration = Duration::from_secs(10);

/// The file warmgate embeds as its plan when no config is given, from the
/// workspace root: what a Cloud Run service without `WARMGATE_CONFIG` runs.
const EMBEDDED_PLAN: &str = "crates/warmgate-config/src/default.toml";

/// Cloud Run's limits on a revision's `containerConcurrency` and
/// `timeoutSeconds` (the request timeout, which cuts WebSockets).
const CLOUD_RUN_MAX_CONCURRENCY: u64 = 1000;
const CLOUD_RUN_MAX_TIMEOUT_SECONDS: u64 = 3600;

/// The name of warmgate's container in every manifest.
const WARMGATE_CONTAINER: &str = "warmgate";

/// Turns each YAML file named on the command line into its documents, as
/// one JSON object keyed by file name.
const YAML_TO_JSON: &str = "import json, sys, yaml
out = {}
for name in sys.argv[1:]:
    with open(name) as f:
        out[name] = [d for d in yaml.safe_load_all(f) if d is not None]
json.dump(out, sys.stdout)
";

pub(crate) fn run() -> anyhow::Result<()> {
    let root = workspace_root();
    // Canonical, as the kustomizations' `../base` paths are made.
    let deploy = std::fs::canonicalize(root.join("deploy")).context("cannot find deploy/")?;
    let python = backend::install_venv(
        &target_dir().join("deploy-check-venv"),
        &root.join("xtask").join("deploy-check-requirements.txt"),
    )?;
    let warmgate = server::release_build()?;

    let mut configs = BTreeMap::new();
    for file in files_under(&deploy, "toml")? {
        let summary = check_config(&warmgate, &file)?;
        println!(
            "deploy-check: {} is a valid warmgate config",
            relative(&file)
        );
        configs.insert(file, summary);
    }
    let embedded_file = root.join(EMBEDDED_PLAN);
    let embedded = (
        embedded_file.clone(),
        check_config(&warmgate, &embedded_file)?,
    );

    let mut problems = Vec::new();
    let mut manifests = Vec::new();
    let mut kubernetes_documents = Vec::new();
    let kustomizations: Vec<PathBuf> = files_under(&deploy.join("kubernetes"), "yaml")?
        .into_iter()
        .filter(|file| {
            file.file_name()
                .is_some_and(|name| name == "kustomization.yaml")
        })
        .collect();
    for kustomization in &kustomizations {
        let dir = kustomization.parent().unwrap_or(&deploy);
        let layer = read_layer(&python, dir)?;
        problems.extend(layer.check(&configs));
        for (file, documents) in layer.manifests {
            if !manifests.contains(&file) {
                manifests.push(file.clone());
                kubernetes_documents.push((file, documents));
            }
        }
    }
    manifests.sort();
    problems.extend(check_ingresses(&kubernetes_documents));

    let check_dir = target_dir().join("deploy-check");
    std::fs::create_dir_all(&check_dir)
        .with_context(|| format!("cannot create {}", check_dir.display()))?;
    let cloud_run_files = files_under(&deploy.join("cloudrun"), "yaml")?;
    for (file, documents) in load_yaml(&python, &cloud_run_files)? {
        for service in &documents {
            problems.extend(
                check_cloud_run(service, &deploy.join("cloudrun"), &configs, &embedded)
                    .into_iter()
                    .map(|problem| format!("{}: {problem}", relative(&file))),
            );
            // The revision's pod spec, validated as a core Pod.
            let stem = file
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or("service");
            let pod_file = check_dir.join(format!("cloudrun-{stem}.pod.json"));
            std::fs::write(&pod_file, revision_as_pod(service).to_string())
                .with_context(|| format!("cannot write {}", pod_file.display()))?;
            manifests.push(pod_file);
        }
    }

    let validated = kubernetes_validate(&python, &manifests);
    let units = files_under(&deploy.join("systemd"), "service")?;
    for unit in &units {
        problems.extend(
            systemd_verify(unit, &warmgate, &check_dir)?
                .into_iter()
                .map(|problem| format!("{}: {problem}", relative(unit))),
        );
    }
    if !problems.is_empty() {
        bail!(
            "{} problem(s) in deploy/:\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    validated?;
    println!(
        "deploy-check: passed ({} configs, {} kustomizations, {} Cloud Run services, \
         {} systemd unit(s); {} manifests valid in strict mode against Kubernetes {})",
        configs.len(),
        kustomizations.len(),
        cloud_run_files.len(),
        units.len(),
        manifests.len(),
        KUBERNETES_VERSIONS.join(" and ")
    );
    Ok(())
}

// === the tools ===

/// Where the unit files expect the config and the program.
const UNIT_CONFIG: &str = "/etc/warmgate/warmgate.toml";
const UNIT_PROGRAM: &str = "/usr/local/bin/warmgate";

/// `systemd-analyze verify` on a copy of `unit` whose `ExecStart` runs
/// `warmgate` with the config beside the unit; the problems it reports
/// (none when it passes), or an error when it cannot run.
fn systemd_verify(unit: &Path, warmgate: &Path, scratch: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(unit).with_context(|| format!("cannot read {}", unit.display()))?;
    let config = unit.with_file_name("warmgate.toml");
    let copy_text = match unit_for_verify(&text, warmgate, &config) {
        Ok(copy) => copy,
        Err(problem) => return Ok(vec![problem]),
    };
    let copy = scratch.join(unit.file_name().unwrap_or_default());
    std::fs::write(&copy, copy_text).with_context(|| format!("cannot write {}", copy.display()))?;
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .context("cannot start systemd-analyze (Debian package `systemd`)")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!(
        "$ systemd-analyze verify {} ({})",
        relative(unit),
        output.status
    );
    // It reports its findings on stderr, and exits non-zero on errors only.
    let findings: Vec<String> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| format!("systemd-analyze verify: {line}"))
        .collect();
    if !output.status.success() && findings.is_empty() {
        return Ok(vec![format!(
            "systemd-analyze verify failed ({})",
            output.status
        )]);
    }
    Ok(findings)
}

/// The unit's text with its one `ExecStart` turned to run `warmgate` on
/// `config`; a problem when the unit does not run [`UNIT_PROGRAM`] on
/// [`UNIT_CONFIG`], the paths `docs/deploy.md` installs them to.
fn unit_for_verify(unit: &str, warmgate: &Path, config: &Path) -> Result<String, String> {
    let expected = format!("ExecStart={UNIT_PROGRAM} --config {UNIT_CONFIG}");
    let exec_starts = unit
        .lines()
        .filter(|line| line.trim_start().starts_with("ExecStart="))
        .count();
    if exec_starts != 1 || !unit.lines().any(|line| line.trim() == expected) {
        return Err(format!("expected one `{expected}` line"));
    }
    Ok(unit
        .lines()
        .map(|line| {
            if line.trim() == expected {
                format!(
                    "ExecStart={} --config {}",
                    warmgate.display(),
                    config.display()
                )
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
}

/// Runs kubernetes-validate in strict mode on `manifests`. A warning fails
/// too: it means a file's kind has no schema, so it was not validated.
fn kubernetes_validate(python: &Path, manifests: &[PathBuf]) -> anyhow::Result<()> {
    let program = python.with_file_name("kubernetes-validate");
    let mut command = Command::new(&program);
    command.arg("--strict");
    for version in KUBERNETES_VERSIONS {
        command.args(["--kubernetes-version", version]);
    }
    command
        .args(manifests.iter().map(|file| relative(file)))
        .current_dir(workspace_root());
    println!(
        "$ {} --strict ... ({} files)",
        relative(&program),
        manifests.len()
    );
    let output = command
        .output()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    let unvalidated: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("WARN"))
        .collect();
    if !output.status.success() {
        bail!(
            "kubernetes-validate found invalid manifests ({})",
            output.status
        );
    }
    if !unvalidated.is_empty() {
        bail!(
            "kubernetes-validate could not validate: {}; expected core Kubernetes kinds only",
            unvalidated.join("; ")
        );
    }
    Ok(())
}

/// Every YAML document of each file, read with PyYAML.
fn load_yaml(python: &Path, files: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, Vec<Value>)>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let output = Command::new(python)
        .args(["-c", YAML_TO_JSON])
        .args(files)
        .output()
        .with_context(|| format!("cannot start {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "cannot read the YAML files {}: {}",
            files
                .iter()
                .map(|file| relative(file))
                .collect::<Vec<_>>()
                .join(", "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut all: BTreeMap<String, Vec<Value>> =
        serde_json::from_slice(&output.stdout).context("PyYAML's JSON does not parse")?;
    files
        .iter()
        .map(|file| {
            let documents = all
                .remove(&file.display().to_string())
                .with_context(|| format!("no documents read from {}", file.display()))?;
            Ok((file.clone(), documents))
        })
        .collect()
}

/// What the deploy checks need from a warmgate config, as
/// `warmgate check-config` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConfigSummary {
    startup_deadline: Duration,
    shutdown_budget: Duration,
    max_connections: u64,
    max_held: u64,
}

fn check_config(warmgate: &Path, file: &Path) -> anyhow::Result<ConfigSummary> {
    let output = Command::new(warmgate)
        .arg("check-config")
        .arg(file)
        .current_dir(workspace_root())
        .output()
        .with_context(|| format!("cannot start {}", warmgate.display()))?;
    if !output.status.success() {
        bail!(
            "`warmgate check-config {}` failed: {}",
            relative(file),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let description = String::from_utf8_lossy(&output.stdout);
    parse_summary(&description)
        .with_context(|| format!("reading `warmgate check-config {}`", relative(file)))
}

/// Reads the gate's `startup_deadline`, `shutdown_budget`,
/// `max_connections` and `max_held` from the plan that
/// `warmgate check-config` prints (`  key = value`, a unit or a
/// comment in parentheses after the value).
fn parse_summary(description: &str) -> anyhow::Result<ConfigSummary> {
    let value = |key: &str| {
        description
            .lines()
            .filter_map(|line| line.trim().strip_prefix(key)?.strip_prefix(" = "))
            .map(|value| value.split(" (").next().unwrap_or(value).trim())
            .next()
            .with_context(|| format!("check-config printed no `{key}`"))
    };
    let duration = |key: &str| {
        let text = value(key)?;
        parse_duration(text).with_context(|| format!("{key} = {text:?} is not a duration"))
    };
    let count = |key: &str| {
        let text = value(key)?;
        text.parse::<u64>()
            .with_context(|| format!("{key} = {text:?} is not a count"))
    };
    Ok(ConfigSummary {
        startup_deadline: duration("startup_deadline")?,
        shutdown_budget: duration("shutdown_budget")?,
        max_connections: count("max_connections")?,
        max_held: count("max_held")?,
    })
}

/// A duration as check-config prints it: `10s`, `1m 30s`, `500ms`.
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for part in text.split_whitespace() {
        let split = part.find(|c: char| !c.is_ascii_digit())?;
        let (number, unit) = part.split_at(split);
        let number: u64 = number.parse().ok()?;
        total += match unit {
            "h" => Duration::from_secs(number * 3600),
            "m" => Duration::from_secs(number * 60),
            "s" => Duration::from_secs(number),
            "ms" => Duration::from_millis(number),
            _ => return None,
        };
    }
    (!text.trim().is_empty()).then_some(total)
}

// === Kubernetes ===

/// One kustomization directory: its manifests (its own and its bases'),
/// and the ConfigMaps it generates, by name, with their files.
struct Layer {
    dir: PathBuf,
    problems: Vec<String>,
    manifests: Vec<(PathBuf, Vec<Value>)>,
    generated: BTreeMap<String, Vec<PathBuf>>,
}

fn read_layer(python: &Path, dir: &Path) -> anyhow::Result<Layer> {
    let kustomization_file = dir.join("kustomization.yaml");
    let (_, documents) = load_yaml(python, std::slice::from_ref(&kustomization_file))?
        .pop()
        .context("no kustomization")?;
    let kustomization = documents.into_iter().next().unwrap_or(Value::Null);
    let mut layer = Layer {
        dir: dir.to_path_buf(),
        problems: Vec::new(),
        manifests: Vec::new(),
        generated: BTreeMap::new(),
    };
    let resources = strings(&kustomization["resources"]);
    let mut own_files = Vec::new();
    for resource in &resources {
        // `../base` from two layers is one folder, validated once.
        let path = dir.join(resource);
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        if path.join("kustomization.yaml").is_file() {
            let base = read_layer(python, &path)?;
            layer.problems.extend(base.problems);
            layer.manifests.extend(base.manifests);
            layer.generated.extend(base.generated);
        } else if path.is_file() {
            own_files.push(path);
        } else {
            layer.problems.push(format!(
                "{}: resources: {resource:?} is neither a file nor a kustomization",
                relative(&kustomization_file)
            ));
        }
    }
    // A manifest beside the kustomization that it does not apply would be
    // neither applied nor checked.
    for file in files_in(dir, "yaml")? {
        if file != kustomization_file && !own_files.contains(&file) {
            layer.problems.push(format!(
                "{}: {} is not in `resources`, so it is neither applied nor checked",
                relative(&kustomization_file),
                relative(&file)
            ));
        }
    }
    layer.manifests.extend(load_yaml(python, &own_files)?);
    for generator in kustomization["configMapGenerator"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = generator["name"].as_str().unwrap_or_default().to_owned();
        let files: Vec<PathBuf> = strings(&generator["files"])
            .iter()
            .map(|file| dir.join(file))
            .collect();
        for file in &files {
            if !file.is_file() {
                layer.problems.push(format!(
                    "{}: configMapGenerator {name:?}: {} does not exist",
                    relative(&kustomization_file),
                    relative(file)
                ));
            }
        }
        layer.generated.insert(name, files);
    }
    Ok(layer)
}

impl Layer {
    /// The checks across the layer's manifests: each Deployment's, and the
    /// Service and PodDisruptionBudget selecting its pods.
    fn check(&self, configs: &BTreeMap<PathBuf, ConfigSummary>) -> Vec<String> {
        let mut problems = self.problems.clone();
        let documents: Vec<(&PathBuf, &Value)> = self
            .manifests
            .iter()
            .flat_map(|(file, documents)| documents.iter().map(move |document| (file, document)))
            .collect();
        let deployments: Vec<_> = documents
            .iter()
            .filter(|(_, doc)| doc["kind"] == "Deployment")
            .collect();
        if deployments.is_empty() && !self.generated.is_empty() {
            problems.push(format!(
                "{}: generates a config but applies no Deployment",
                relative(&self.dir)
            ));
        }
        for (file, deployment) in &deployments {
            let config = |name: &str, key: &str| {
                let files = self.generated.get(name)?;
                let file = files
                    .iter()
                    .find(|file| file.file_name().is_some_and(|f| f == key))?;
                configs
                    .get_key_value(file)
                    .map(|(file, summary)| (file.as_path(), summary))
            };
            for problem in check_deployment(deployment, &config) {
                problems.push(format!("{}: {problem}", relative(file)));
            }
            let labels = &deployment["spec"]["template"]["metadata"]["labels"];
            for (other_file, other) in &documents {
                let selector = match other["kind"].as_str() {
                    Some("Service") => &other["spec"]["selector"],
                    Some("PodDisruptionBudget") => &other["spec"]["selector"]["matchLabels"],
                    _ => continue,
                };
                if !selects(selector, labels) {
                    problems.push(format!(
                        "{}: the selector {selector} does not select the pods of {} (labels {labels})",
                        relative(other_file),
                        relative(file)
                    ));
                }
            }
        }
        problems
    }
}

/// A warmgate config's file and its summary.
type ConfigRef<'a> = (&'a Path, &'a ConfigSummary);

/// The checks of one Deployment; `config(name, key)` is the file and the
/// summary of the warmgate config that the ConfigMap `name` holds under
/// `key`, if the layer generates it.
fn check_deployment<'a>(
    deployment: &Value,
    config: &dyn Fn(&str, &str) -> Option<ConfigRef<'a>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let pod = &deployment["spec"]["template"]["spec"];
    let Some(warmgate) = container(pod, WARMGATE_CONTAINER) else {
        return vec![format!("no container named {WARMGATE_CONTAINER:?}")];
    };
    let port = warmgate["ports"][0]["name"].as_str().unwrap_or("http");
    for (probe, path) in [
        ("startupProbe", "/startupz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/livez"),
    ] {
        if probe != "startupProbe" || warmgate[probe]["tcpSocket"].is_null() {
            problems.extend(check_http_probe(
                warmgate,
                probe,
                path,
                &[json!(port), warmgate["ports"][0]["containerPort"].clone()],
            ));
        }
    }
    let security = &warmgate["securityContext"];
    for (key, expected) in [
        ("runAsNonRoot", json!(true)),
        ("readOnlyRootFilesystem", json!(true)),
        ("allowPrivilegeEscalation", json!(false)),
    ] {
        if security[key] != expected {
            problems.push(format!(
                "container {WARMGATE_CONTAINER}: securityContext.{key} is {}, expected {expected}",
                security[key]
            ));
        }
    }
    if !strings(&security["capabilities"]["drop"])
        .iter()
        .any(|c| c == "ALL")
    {
        problems.push(format!(
            "container {WARMGATE_CONTAINER}: securityContext.capabilities.drop lacks \"ALL\""
        ));
    }
    for key in ["requests/cpu", "requests/memory", "limits/memory"] {
        let (group, resource) = key.split_once('/').unwrap_or_default();
        if warmgate["resources"][group][resource].is_null() {
            problems.push(format!(
                "container {WARMGATE_CONTAINER}: resources.{group}.{resource} is not set"
            ));
        }
    }
    match config_source(pod, warmgate) {
        Err(problem) => problems.push(problem),
        Ok(None) => problems.push(format!(
            "container {WARMGATE_CONTAINER}: no WARMGATE_CONFIG, expected the config from a ConfigMap"
        )),
        Ok(Some((volume, key))) => {
            let name = volume["configMap"]["name"].as_str().unwrap_or_default();
            match config(name, &key) {
                None => problems.push(format!(
                    "the config {key:?} of ConfigMap {name:?} is not generated from a warmgate config by the kustomization"
                )),
                Some((config_file, summary)) => {
                    problems.extend(check_startup_window(warmgate, config_file, summary));
                    let grace = pod["terminationGracePeriodSeconds"].as_u64();
                    if grace.is_none_or(|grace| Duration::from_secs(grace) <= summary.shutdown_budget) {
                        problems.push(format!(
                            "terminationGracePeriodSeconds is {}, expected more than the config's shutdown_budget ({:?}), or Kubernetes kills warmgate mid-drain",
                            pod["terminationGracePeriodSeconds"],
                            summary.shutdown_budget
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// The checks of every Ingress among the Kubernetes manifests (of all the
/// kustomizations, each file once): each backend names a Service of these
/// manifests and one of its ports, by name or number.
fn check_ingresses(documents: &[(PathBuf, Vec<Value>)]) -> Vec<String> {
    let all = || {
        documents
            .iter()
            .flat_map(|(file, documents)| documents.iter().map(move |document| (file, document)))
    };
    let mut problems = Vec::new();
    for (file, ingress) in all().filter(|(_, doc)| doc["kind"] == "Ingress") {
        let spec = &ingress["spec"];
        let backends = std::iter::once(&spec["defaultBackend"])
            .chain(
                spec["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|rule| rule["http"]["paths"].as_array().into_iter().flatten())
                    .map(|path| &path["backend"]),
            )
            .filter(|backend| !backend.is_null());
        let mut any = false;
        for backend in backends {
            any = true;
            let wanted = &backend["service"];
            let service = all().find(|(_, doc)| {
                doc["kind"] == "Service" && doc["metadata"]["name"] == wanted["name"]
            });
            let Some((_, service)) = service else {
                problems.push(format!(
                    "{}: a backend names Service {}, which no kustomization under deploy/kubernetes applies",
                    relative(file),
                    wanted["name"]
                ));
                continue;
            };
            let port = &wanted["port"];
            let matches = service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    (!port["name"].is_null() && p["name"] == port["name"])
                        || (!port["number"].is_null() && p["port"] == port["number"])
                });
            if !matches {
                problems.push(format!(
                    "{}: a backend names port {port} of Service {}, which has no such port",
                    relative(file),
                    wanted["name"]
                ));
            }
        }
        if !any {
            problems.push(format!("{}: an Ingress without a backend", relative(file)));
        }
    }
    problems
}

/// True when every label of `selector` is on the pod.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|selector| {
        !selector.is_empty() && selector.iter().all(|(key, value)| &labels[key] == value)
    })
}

// === Cloud Run ===

/// The checks of one Cloud Run service: the keys that make warmgate work
/// there. `cloudrun_dir` holds the configs the secrets are made from;
/// `embedded` is the plan warmgate runs without one ([`EMBEDDED_PLAN`]).
fn check_cloud_run(
    service: &Value,
    cloudrun_dir: &Path,
    configs: &BTreeMap<PathBuf, ConfigSummary>,
    embedded: &(PathBuf, ConfigSummary),
) -> Vec<String> {
    let mut problems = Vec::new();
    if service["apiVersion"] != "serving.knative.dev/v1" || service["kind"] != "Service" {
        return vec![format!(
            "apiVersion {} kind {}, expected a serving.knative.dev/v1 Service",
            service["apiVersion"], service["kind"]
        )];
    }
    let template = &service["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    if annotations["run.googleapis.com/cpu-throttling"] != "false" {
        problems.push(format!(
            "run.googleapis.com/cpu-throttling is {}, expected \"false\": the background checks must run on an idle instance",
            annotations["run.googleapis.com/cpu-throttling"]
        ));
    }
    if let Some(dependencies) = annotations["run.googleapis.com/container-dependencies"].as_str() {
        let waits = serde_json::from_str::<Value>(dependencies)
            .map(|dependencies| !dependencies[WARMGATE_CONTAINER].is_null())
            .unwrap_or(true);
        if waits {
            problems.push(format!(
                "run.googleapis.com/container-dependencies {dependencies:?} makes warmgate wait for other containers; it must start at once to hold clients"
            ));
        }
    }
    let spec = &template["spec"];
    let concurrency = spec["containerConcurrency"].as_u64();
    if !concurrency.is_some_and(|n| (1..=CLOUD_RUN_MAX_CONCURRENCY).contains(&n)) {
        problems.push(format!(
            "containerConcurrency is {}, expected 1 to {CLOUD_RUN_MAX_CONCURRENCY}",
            spec["containerConcurrency"]
        ));
    }
    if !spec["timeoutSeconds"]
        .as_u64()
        .is_some_and(|n| (1..=CLOUD_RUN_MAX_TIMEOUT_SECONDS).contains(&n))
    {
        problems.push(format!(
            "timeoutSeconds is {}, expected the request timeout that cuts WebSockets, 1 to {CLOUD_RUN_MAX_TIMEOUT_SECONDS}",
            spec["timeoutSeconds"]
        ));
    }
    let with_ports: Vec<&str> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|container| !container["ports"].is_null())
        .map(|container| container["name"].as_str().unwrap_or("(unnamed)"))
        .collect();
    if with_ports != [WARMGATE_CONTAINER] {
        problems.push(format!(
            "containers with ports: {with_ports:?}, expected only {WARMGATE_CONTAINER:?}, the ingress container"
        ));
    }
    let Some(warmgate) = container(spec, WARMGATE_CONTAINER) else {
        problems.push(format!("no container named {WARMGATE_CONTAINER:?}"));
        return problems;
    };
    let port = warmgate["ports"][0]["containerPort"].clone();
    if warmgate["ports"]
        .as_array()
        .is_none_or(|ports| ports.len() != 1)
        || !port.is_u64()
    {
        problems.push(format!(
            "container {WARMGATE_CONTAINER}: expected one port with a containerPort"
        ));
    }
    if env(warmgate, "PORT").is_some() {
        problems.push(format!(
            "container {WARMGATE_CONTAINER}: sets PORT, which Cloud Run sets from containerPort"
        ));
    }
    let ports = [port.clone()];
    let startup_window = probe_window(&warmgate["startupProbe"]);
    if startup_window > CLOUD_RUN_MAX_STARTUP_PROBE {
        problems.push(format!(
            "container {WARMGATE_CONTAINER}: the startupProbe waits {} ({}), longer than the {} Cloud Run allows a startup probe",
            seconds(startup_window),
            window_terms(&warmgate["startupProbe"]),
            seconds(CLOUD_RUN_MAX_STARTUP_PROBE)
        ));
    }
    if warmgate["startupProbe"]["tcpSocket"].is_null() {
        problems.extend(check_http_probe(
            warmgate,
            "startupProbe",
            "/startupz",
            &ports,
        ));
    } else if warmgate["startupProbe"]["tcpSocket"]["port"] != port {
        problems.push(format!(
            "container {WARMGATE_CONTAINER}: startupProbe.tcpSocket.port is {}, expected {port}",
            warmgate["startupProbe"]["tcpSocket"]["port"]
        ));
    }
    problems.extend(check_http_probe(
        warmgate,
        "livenessProbe",
        "/livez",
        &ports,
    ));
    // The config warmgate runs: the mounted one, or the embedded plan.
    let config = match config_source(spec, warmgate) {
        Err(problem) => {
            problems.push(problem);
            None
        }
        Ok(None) => Some((embedded.0.as_path(), &embedded.1)),
        Ok(Some((volume, key))) => {
            if volume["secret"].is_null() {
                problems.push(format!(
                    "the config volume {} is not a Secret Manager secret",
                    volume["name"]
                ));
            }
            let config = configs.get_key_value(&cloudrun_dir.join(&key));
            if config.is_none() {
                problems.push(format!(
                    "the config {key:?} is not a warmgate config in {} to make the secret from",
                    relative(cloudrun_dir)
                ));
            }
            config.map(|(file, summary)| (file.as_path(), summary))
        }
    };
    let Some((config_file, summary)) = config else {
        return problems;
    };
    let config_name = relative(config_file);
    if summary.shutdown_budget > CLOUD_RUN_KILL_AFTER {
        problems.push(format!(
            "the shutdown_budget of {config_name} ({}) is longer than Cloud Run's {} between SIGTERM and SIGKILL",
            seconds(summary.shutdown_budget),
            seconds(CLOUD_RUN_KILL_AFTER)
        ));
    }
    for (key, limit) in [
        ("max_connections", summary.max_connections),
        ("max_held", summary.max_held),
    ] {
        if concurrency.is_some_and(|n| n > limit) {
            problems.push(format!(
                "containerConcurrency {} is above the {key} of {config_name} ({limit}): Cloud Run would send clients that warmgate refuses",
                spec["containerConcurrency"]
            ));
        }
    }
    problems.extend(check_startup_window(warmgate, config_file, summary));
    problems
}

/// The revision's pod spec as a core `Pod`, for kubernetes-validate:
/// without `containerConcurrency` and `timeoutSeconds`, which only Knative
/// has (and which [`check_cloud_run`] checks).
fn revision_as_pod(service: &Value) -> Value {
    let mut spec = service["spec"]["template"]["spec"].clone();
    if let Some(spec) = spec.as_object_mut() {
        spec.remove("containerConcurrency");
        spec.remove("timeoutSeconds");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": service["metadata"]["name"]},
        "spec": spec,
    })
}

// === shared by both platforms ===

/// How long a probe lets the container fail before the platform gives up:
/// `initialDelaySeconds` + `periodSeconds` × `failureThreshold`, with the
/// defaults of Kubernetes and Cloud Run (0, 10 and 3) for the keys not set.
fn probe_window(probe: &Value) -> Duration {
    let key = |name: &str, default: u64| probe[name].as_u64().unwrap_or(default);
    Duration::from_secs(
        key("initialDelaySeconds", 0)
            + key("periodSeconds", 10).saturating_mul(key("failureThreshold", 3)),
    )
}

/// The terms of [`probe_window`], for messages.
fn window_terms(probe: &Value) -> String {
    let key = |name: &str, default: u64| probe[name].as_u64().unwrap_or(default);
    format!(
        "initialDelaySeconds {} + periodSeconds {} × failureThreshold {}",
        key("initialDelaySeconds", 0),
        key("periodSeconds", 10),
        key("failureThreshold", 3)
    )
}

/// A duration in seconds, as the probes count: `330 s`.
fn seconds(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{duration:?}")
    }
}

/// A problem when `container`'s startup probe is an HTTP GET of
/// `/startupz` that gives up before the `startup_deadline` of the config
/// in `config_file`, plus [`STARTUP_PROBE_MARGIN`]: the platform would
/// restart warmgate while the gate is still starting within its time.
fn check_startup_window(
    container: &Value,
    config_file: &Path,
    summary: &ConfigSummary,
) -> Option<String> {
    let probe = &container["startupProbe"];
    if probe["httpGet"]["path"] != "/startupz" {
        return None;
    }
    let window = probe_window(probe);
    let needed = summary.startup_deadline + STARTUP_PROBE_MARGIN;
    (window < needed).then(|| {
        format!(
            "container {}: the /startupz startupProbe gives up after {} ({}), shorter than the startup_deadline of {} ({}) plus a {} margin: the platform would restart warmgate mid-start",
            container["name"].as_str().unwrap_or("(unnamed)"),
            seconds(window),
            window_terms(probe),
            relative(config_file),
            seconds(summary.startup_deadline),
            seconds(STARTUP_PROBE_MARGIN)
        )
    })
}

fn container<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod["containers"]
        .as_array()?
        .iter()
        .find(|container| container["name"] == name)
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|variable| variable["name"] == name)
}

/// `probe` of `container` is an HTTP GET of `path` on one of `ports`.
fn check_http_probe(container: &Value, probe: &str, path: &str, ports: &[Value]) -> Vec<String> {
    let get = &container[probe]["httpGet"];
    let name = container["name"].as_str().unwrap_or("(unnamed)");
    if get["path"] != path {
        return vec![format!(
            "container {name}: {probe} gets {}, expected an httpGet of {path:?}",
            get["path"]
        )];
    }
    if !ports.contains(&get["port"]) {
        return vec![format!(
            "container {name}: {probe}.httpGet.port is {}, expected the public listener's port ({})",
            get["port"],
            ports
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        )];
    }
    Vec::new()
}

/// Where `container`'s config comes from: the volume mounted at the folder
/// WARMGATE_CONFIG names, and the file's name in it (the ConfigMap key, or
/// the secret item's path); `None` without WARMGATE_CONFIG.
fn config_source(pod: &Value, container: &Value) -> Result<Option<(Value, String)>, String> {
    let name = container["name"].as_str().unwrap_or("(unnamed)");
    let Some(variable) = env(container, "WARMGATE_CONFIG") else {
        return Ok(None);
    };
    let path = Path::new(variable["value"].as_str().unwrap_or_default());
    let (Some(folder), Some(file)) = (path.parent(), path.file_name().and_then(|f| f.to_str()))
    else {
        return Err(format!(
            "container {name}: WARMGATE_CONFIG {} is not a file path",
            variable["value"]
        ));
    };
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|mount| mount["mountPath"].as_str().map(Path::new) == Some(folder))
        .ok_or_else(|| {
            format!(
                "container {name}: no volume is mounted at {}, where WARMGATE_CONFIG points",
                folder.display()
            )
        })?;
    let volume = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|volume| volume["name"] == mount["name"])
        .ok_or_else(|| {
            format!(
                "container {name}: mounts volume {}, which the pod does not have",
                mount["name"]
            )
        })?;
    let source = if volume["secret"].is_null() {
        &volume["configMap"]
    } else {
        &volume["secret"]
    };
    // With `items`, the file is the item whose path is its name; without,
    // every key of a ConfigMap is a file.
    if let Some(items) = source["items"].as_array()
        && !items.iter().any(|item| item["path"] == file)
    {
        return Err(format!(
            "container {name}: volume {} has no item with path {file:?}, the file WARMGATE_CONFIG names",
            volume["name"]
        ));
    }
    Ok(Some((volume.clone(), file.to_owned())))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// The files ending in `.extension` in `dir` and below, sorted.
fn files_under(dir: &Path, extension: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = files_in(dir, extension)?;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        if path.is_dir() {
            files.extend(files_under(&path, extension)?);
        }
    }
    files.sort();
    Ok(files)
}

/// The files ending in `.extension` directly in `dir`, sorted.
fn files_in(dir: &Path, extension: &str) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        if path.is_file() && path.extension().is_some_and(|e| e == extension) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// `path` from the workspace root, for messages.
fn relative(path: &Path) -> String {
    let root = workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests;

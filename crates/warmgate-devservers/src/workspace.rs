//! Where the workspace keeps its build output, as cargo resolves it, for
//! xtask and the tests: what they build or install goes under it.

use std::path::{Path, PathBuf};

/// The target directory: `CARGO_TARGET_DIR` (relative to the workspace
/// root when relative, as cargo reads it), else `target/` under the root.
pub fn target_dir(workspace_root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root.join(dir),
        None => workspace_root.join("target"),
    }
}

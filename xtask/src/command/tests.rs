//! The cargo that xtask starts sees the environment a shell would give it.

use super::*;

#[test]
fn a_child_cargo_does_not_inherit_what_cargo_run_set_for_xtask() {
    // `cargo test` sets these for this process as `cargo run` does for
    // xtask, so the test sees the same environment xtask runs in.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
    let command = cargo();
    let removed: Vec<String> = command
        .get_envs()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION"] {
        assert!(
            removed.iter().any(|removed| removed == name),
            "{name} is passed on: {removed:?}"
        );
    }
    // What configures cargo itself is left alone.
    assert!(
        !removed
            .iter()
            .any(|name| name == "CARGO_TARGET_DIR" || name == "CARGO_HOME")
    );
    assert_eq!(command.get_program(), "cargo");
    assert_eq!(command.get_current_dir(), Some(workspace_root().as_path()));
}

//! One test per crash the fuzzer found: the input, kept as found in
//! `fuzz/regressions/<target>/`, replayed through its target's body. A
//! crash lands as a [`regression!`] with its fix: the workspace ignores no
//! test, so a crash not fixed yet stays out of the tree, where `cargo xtask
//! fuzz` finds it again. `docs/fuzzing.md` says how a crash gets here.

mod common;

use common::fuzz_dir;

/// A test replaying `fuzz/regressions/<target>/<file>`, which must pass.
/// The file is read at compile time, so a missing one fails the build.
/// Attributes before the name go on the test.
macro_rules! regression {
    ($(#[$attribute:meta])* $test:ident, $target:literal, $file:literal) => {
        #[test]
        $(#[$attribute])*
        fn $test() {
            common::replay(
                $target,
                concat!("fuzz/regressions/", $target, "/", $file),
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../fuzz/regressions/",
                    $target,
                    "/",
                    $file
                )),
            );
        }
    };
}

// The reproductions, one line each.

// `Connection: ke<obs-text>ep-alive, Upgrade`: reading the list as bytes
// found `Upgrade` in a value the rest of the handshake treats as listing
// nothing (not visible ASCII).
regression!(
    connection_obs_text,
    "handshake",
    "crash-b49a5e305143f3c0130fa4546b904c93ca0b5e8b"
);

#[test]
fn every_reproduction_has_a_test() {
    // Whitespace folded, so a line rustfmt breaks still counts.
    let this_file = include_str!("regressions.rs")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for target in warmgate_fuzz_targets::TARGETS {
        let dir = fuzz_dir().join("regressions").join(target.name);
        for file in common::files(&dir) {
            let name = file
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                this_file.contains(&format!("\"{}\", \"{name}\"", target.name)),
                "{} has no regression! line in tests/regressions.rs",
                file.display()
            );
        }
    }
}

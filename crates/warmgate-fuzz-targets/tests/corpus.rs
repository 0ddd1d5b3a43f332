//! Every committed corpus input replayed through its target's body, one
//! test per target, so the normal test run checks what the fuzzer once
//! found interesting; and the list of targets checked against the fuzz
//! binaries and corpus directories, so neither side can gain a target alone.

mod common;

use common::{fuzz_dir, replay_directory};
use warmgate_fuzz_targets::TARGETS;

#[test]
fn client_message_corpus() {
    replay_directory("client_message", "corpus");
}

#[test]
fn handshake_corpus() {
    replay_directory("handshake", "corpus");
}

#[test]
fn config_file_corpus() {
    replay_directory("config_file", "corpus");
}

#[test]
fn jwt_header_corpus() {
    replay_directory("jwt_header", "corpus");
}

#[test]
fn token_from_request_corpus() {
    replay_directory("token_from_request", "corpus");
}

#[test]
fn every_target_has_a_corpus_test_a_binary_and_seeds() {
    let this_file = include_str!("corpus.rs");
    for target in TARGETS {
        let name = target.name;
        assert!(
            this_file.contains(&format!("fn {name}_corpus()")),
            "tests/corpus.rs has no `{name}_corpus` test"
        );
        let binary = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(binary.is_file(), "{} is missing", binary.display());
        let seeds = common::files(&fuzz_dir().join("corpus").join(name));
        assert!(!seeds.is_empty(), "fuzz/corpus/{name}/ has no seed inputs");
    }
    let binaries = common::files(&fuzz_dir().join("fuzz_targets"));
    for binary in binaries {
        let name = binary
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default();
        assert!(
            warmgate_fuzz_targets::target(name).is_some(),
            "{} has no entry in warmgate_fuzz_targets::TARGETS",
            binary.display()
        );
    }
}

//! The command line: every invocation the docs and CI use parses to the
//! options meant, the defaults are the ones the commands document, and
//! anything else is refused.

use std::time::Duration;

use clap::CommandFactory as _;

use super::*;
use crate::chaos::stack::Auth;

/// Parses `cargo xtask ARGS…`.
fn parse(args: &[&str]) -> Result<Option<Command>, clap::Error> {
    Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
        .map(|cli| cli.command)
}

/// Parses `cargo xtask LINE`, split on spaces, and expects success.
fn parsed(line: &str) -> Command {
    let args: Vec<&str> = line.split_whitespace().collect();
    match parse(&args) {
        Ok(Some(command)) => command,
        Ok(None) => panic!("`cargo xtask {line}` parsed to no command"),
        Err(error) => panic!("`cargo xtask {line}` was refused: {error}"),
    }
}

#[test]
fn the_command_line_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn every_documented_invocation_parses() {
    // From README.md, docs/*.md, .ci/run and `cargo xtask ci`.
    for line in [
        "audit",
        "backend",
        "backend --install-only",
        "backend --port 9000 --startup-delay 0.5",
        "bench",
        "bench --quick",
        "chaos",
        "chaos --auth none",
        "ci",
        "conformance",
        "deploy-check",
        "deps up",
        "deps down",
        "deps status",
        "docs",
        "docs --skip-bench",
        "dev",
        "dev --upstream",
        "dev --upstream --startup-delay 2",
        "dev --listen 127.0.0.1:8081 --admin-listen 127.0.0.1:9091",
        "fuzz",
        "fuzz --seconds 30",
        "fuzz --target config_file",
        "fuzz --seconds 600 --merge",
        "fuzz --target config_file --seconds 300 --merge",
        "image",
        "image --tag localhost/warmgate:1 --base debian:bookworm-slim",
        "image-test",
        "otel-smoke",
        "soak",
        "soak --minutes 1",
        "soak --minutes 10 --auth jwt",
        "web-test",
    ] {
        parsed(line);
    }
}

#[test]
fn no_command_is_not_an_error() {
    // `main` prints the help then, and succeeds.
    assert_eq!(parse(&[]).expect("no arguments parse"), None);
}

#[test]
fn options_default_to_what_the_commands_document() {
    assert_eq!(
        parsed("backend"),
        Command::Backend(backend::BackendArgs {
            port: 8000,
            startup_delay: Duration::from_secs(2),
            install_only: false,
        })
    );
    assert_eq!(
        parsed("bench"),
        Command::Bench(bench::BenchArgs { quick: false })
    );
    assert_eq!(parsed("chaos"), Command::Chaos(chaos::ChaosArgs::default()));
    assert_eq!(chaos::ChaosArgs::default().auth, Auth::Jwt);
    assert_eq!(
        parsed("dev"),
        Command::Dev(dev::DevArgs {
            listen: "127.0.0.1:8080".parse().expect("an address"),
            admin_listen: "127.0.0.1:9090".parse().expect("an address"),
            upstream: false,
            startup_delay: None,
        })
    );
    assert_eq!(
        parsed("docs"),
        Command::Docs(docs::DocsArgs { skip_bench: false })
    );
    assert_eq!(parsed("fuzz"), Command::Fuzz(fuzz::FuzzArgs::default()));
    assert_eq!(fuzz::FuzzArgs::default().seconds, 60);
    assert_eq!(parsed("image"), Command::Image(image::ImageArgs::default()));
    assert_eq!(
        parsed("image-test"),
        Command::ImageTest(image::ImageArgs {
            tag: "localhost/warmgate:dev".to_owned(),
            base: None,
        })
    );
    assert_eq!(parsed("soak"), Command::Soak(soak::SoakArgs::default()));
    assert_eq!(soak::SoakArgs::default().minutes, 10.0);
}

#[test]
fn options_carry_the_values_given() {
    assert_eq!(
        parsed("backend --port 9000 --startup-delay 0.5 --install-only"),
        Command::Backend(backend::BackendArgs {
            port: 9000,
            startup_delay: Duration::from_millis(500),
            install_only: true,
        })
    );
    assert_eq!(
        parsed("chaos --auth none"),
        Command::Chaos(chaos::ChaosArgs { auth: Auth::None })
    );
    assert_eq!(
        parsed("deps status"),
        Command::Deps(deps::DepsCommand::Status)
    );
    assert_eq!(
        parsed("dev --upstream --startup-delay 0.5 --listen 127.0.0.1:8081"),
        Command::Dev(dev::DevArgs {
            listen: "127.0.0.1:8081".parse().expect("an address"),
            admin_listen: "127.0.0.1:9090".parse().expect("an address"),
            upstream: true,
            startup_delay: Some(Duration::from_millis(500)),
        })
    );
    assert_eq!(
        parsed("fuzz --target config_file --seconds 5 --target frame --merge --jobs 2"),
        Command::Fuzz(fuzz::FuzzArgs {
            seconds: 5,
            targets: vec!["config_file".to_owned(), "frame".to_owned()],
            merge: true,
            jobs: 2,
        })
    );
    assert_eq!(
        parsed("image-test --tag warmgate:1 --base debian:bookworm-slim"),
        Command::ImageTest(image::ImageArgs {
            tag: "warmgate:1".to_owned(),
            base: Some("debian:bookworm-slim".to_owned()),
        })
    );
    assert_eq!(
        parsed("soak --auth none --minutes 0.5"),
        Command::Soak(soak::SoakArgs {
            minutes: 0.5,
            auth: Auth::None,
        })
    );
}

#[test]
fn unknown_commands_flags_and_bad_values_are_refused() {
    for bad in [
        &["nonsense"][..],
        &["audit", "--fast"],
        &["ci", "extra"],
        &["conformance", "--quick"],
        &["deploy-check", "deploy"],
        &["otel-smoke", "-v"],
        &["web-test", "--headed"],
        &["bench", "--slow"],
        &["bench", "--quick", "yes"],
        &["backend", "--port", "70000"],
        &["backend", "--port"],
        &["backend", "--startup-delay", "-1"],
        &["backend", "--startup-delay", "soon"],
        &["chaos", "--auth", "basic"],
        &["chaos", "--auth"],
        &["soak", "--minutes", "0"],
        &["soak", "--minutes", "-1"],
        &["soak", "--minutes", "NaN"],
        &["soak", "10"],
        &["deps"],
        &["deps", "sideways"],
        &["deps", "up", "now"],
        &["dev", "--startup-delay", "2"],
        &["dev", "--listen", "nowhere"],
        &["dev", "--admin-listen"],
        &["dev", "--downstream"],
        &["fuzz", "--seconds", "0"],
        &["fuzz", "--seconds"],
        &["fuzz", "--jobs", "many"],
        &["fuzz", "--target"],
        &["fuzz", "config_file"],
        &["image", "--tag"],
        &["image", "--tag", ""],
        &["image", "--tag", "--base", "x"],
        &["image", "--base", ""],
        &["image", "--test"],
        &["image", "warmgate:1"],
        &["image-test", "--tag", "-x"],
    ] {
        assert!(
            parse(bad).is_err(),
            "`cargo xtask {}` was accepted",
            bad.join(" ")
        );
    }
}

#[test]
fn the_module_doc_lists_every_command() {
    let doc: String = include_str!("main.rs")
        .lines()
        .take_while(|line| line.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    for command in Cli::command().get_subcommands() {
        let name = command.get_name();
        assert!(
            doc.contains(&format!("`cargo xtask {name}")),
            "the module doc of main.rs does not list `cargo xtask {name}`"
        );
    }
}

//! The listen precedence: `--listen` (or `WARMGATE_LISTEN`) over `PORT`
//! over the config file over the default; and which file `check-config`
//! checks.

use clap::Parser as _;

use super::*;

fn args(argv: &[&str]) -> RunArgs {
    let mut full = vec!["warmgate"];
    full.extend_from_slice(argv);
    Cli::try_parse_from(full).unwrap().run
}

fn listen(argv: &[&str], port: Option<&str>) -> String {
    args(argv)
        .load_config_with(port)
        .unwrap()
        .listen
        .to_string()
}

#[test]
fn port_means_every_interface_on_that_port() {
    assert_eq!(listen(&[], None), "127.0.0.1:8080");
    assert_eq!(listen(&[], Some("9000")), "0.0.0.0:9000");
    assert_eq!(listen(&[], Some(" 8080 ")), "0.0.0.0:8080");
    // Empty counts as unset, as for every other variable.
    assert_eq!(listen(&[], Some("")), "127.0.0.1:8080");
}

#[test]
fn the_listen_flag_beats_port() {
    assert_eq!(
        listen(&["--listen", "127.0.0.1:7000"], Some("9000")),
        "127.0.0.1:7000"
    );
}

#[test]
fn port_beats_the_config_file() {
    let path = std::env::temp_dir().join(format!(
        "warmgate-cli-test-{}-port.toml",
        std::process::id()
    ));
    std::fs::write(&path, "listen = \"127.0.0.1:7001\"\n").unwrap();
    let path_text = path.to_str().unwrap().to_owned();
    let from_file = listen(&["--config", &path_text], None);
    let from_port = listen(&["--config", &path_text], Some("9000"));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_file, "127.0.0.1:7001");
    assert_eq!(from_port, "0.0.0.0:9000");
}

#[test]
fn a_port_that_is_not_a_port_is_refused_naming_the_variable() {
    for bad in ["http", "0", "65536", "-1", "80.5"] {
        let error = args(&[]).load_config_with(Some(bad)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "PORT: invalid value {bad:?}, expected a port number from 1 to 65535 (it means listening on 0.0.0.0:$PORT; --listen or WARMGATE_LISTEN overrides it)"
            )
        );
    }
    // The flag wins, so a bad PORT beside it is never read.
    assert!(
        args(&["--listen", "127.0.0.1:7000"])
            .load_config_with(Some("http"))
            .is_ok()
    );
}

/// `check-config`'s file, and the run arguments it checks with.
fn check_config(argv: &[&str]) -> RunArgs {
    let mut full = vec!["warmgate"];
    full.extend_from_slice(argv);
    let cli = Cli::try_parse_from(full).unwrap();
    let Some(Command::CheckConfig { file }) = cli.command else {
        panic!("not check-config: {argv:?}");
    };
    cli.run.with_config(file)
}

#[test]
fn check_config_checks_the_file_the_server_would_read() {
    // Its own FILE first, then --config (or WARMGATE_CONFIG, the same
    // argument), then the embedded default.
    assert_eq!(
        check_config(&["--config", "a.toml", "check-config", "b.toml"]).config_file(),
        Some(std::path::Path::new("b.toml"))
    );
    assert_eq!(
        check_config(&["--config", "a.toml", "check-config"]).config_file(),
        Some(std::path::Path::new("a.toml"))
    );
    assert_eq!(
        check_config(&["check-config", "--config", "a.toml"]).config_file(),
        Some(std::path::Path::new("a.toml"))
    );
    assert_eq!(check_config(&["check-config"]).config_file(), None);
}

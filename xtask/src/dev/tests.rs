//! `dev` builds what it runs first and then runs the built programs, so
//! that no start deadline includes a compilation.

use super::*;

#[test]
fn one_build_makes_every_program_dev_starts() {
    assert_eq!(
        build_arguments(&[GATEWAY, AUTH_SERVICE]),
        [
            "build",
            "-p",
            "warmgate",
            "--bin",
            "warmgate",
            "-p",
            "warmgate-bench-servers",
            "--bin",
            "warmgate-jwks-server",
        ]
    );
}

#[test]
fn the_auth_service_starts_from_its_built_binary_not_cargo_run() {
    let command = auth_service_command();
    assert_eq!(
        command.get_program(),
        target_dir()
            .join("debug")
            .join("warmgate-jwks-server")
            .as_os_str()
    );
    assert_eq!(command.get_args().count(), 0);
}

#[test]
fn the_gateway_starts_from_its_built_binary_not_cargo_run() {
    let listen: SocketAddr = "127.0.0.1:8080".parse().expect("an address");
    let admin: SocketAddr = "127.0.0.1:9090".parse().expect("an address");
    let command = gateway_command(listen, admin);
    assert_eq!(
        command.get_program(),
        target_dir().join("debug").join("warmgate").as_os_str()
    );
    let args: Vec<_> = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        args,
        [
            "--config",
            "examples/chat.toml",
            "--listen",
            "127.0.0.1:8080",
            "--admin-listen",
            "127.0.0.1:9090",
        ]
    );
    assert_eq!(command.get_current_dir(), Some(workspace_root().as_path()));
}

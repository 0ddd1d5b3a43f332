//! The warmgate program, built inside this package so that the end-to-end
//! tests can start it as a child process (cargo gives integration tests the
//! path of their own package's binaries only).

fn main() -> std::process::ExitCode {
    warmgate::main()
}

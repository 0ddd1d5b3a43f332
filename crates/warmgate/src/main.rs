//! The `warmgate` executable; everything it does lives in the library.

fn main() -> std::process::ExitCode {
    warmgate::main()
}

//! Empty: cargo applies a package's `[build-dependencies]` features only to
//! a package with a build script, and the hack unifies those too.

fn main() {}

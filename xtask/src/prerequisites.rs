//! Installs the system programs the tests need when they are missing:
//! `redis-server` (Debian package `redis-server`), PostgreSQL's `initdb`
//! (Debian package `postgresql`) and `chromium` for the browser tests. As root it installs them with
//! apt-get; otherwise it names the package to install.

use anyhow::bail;

use crate::command;

/// A program the tests run, and the Debian package that provides it.
struct Prerequisite {
    program: &'static str,
    package: &'static str,
    /// Where the program may live when it is not on the PATH.
    elsewhere: &'static [&'static str],
}

const PREREQUISITES: [Prerequisite; 3] = [
    Prerequisite {
        program: "redis-server",
        package: "redis-server",
        elsewhere: &[],
    },
    Prerequisite {
        program: "initdb",
        package: "postgresql",
        elsewhere: &["/usr/lib/postgresql"],
    },
    Prerequisite {
        program: "chromium",
        package: "chromium",
        elsewhere: &[],
    },
];

fn present(prerequisite: &Prerequisite) -> bool {
    command::on_path(prerequisite.program)
        || prerequisite.elsewhere.iter().any(|dir| {
            std::fs::read_dir(dir).is_ok_and(|versions| {
                versions.flatten().any(|version| {
                    version
                        .path()
                        .join("bin")
                        .join(prerequisite.program)
                        .is_file()
                })
            })
        })
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// Makes sure every prerequisite is installed.
pub(crate) fn ensure() -> anyhow::Result<()> {
    let missing: Vec<&Prerequisite> = PREREQUISITES.iter().filter(|p| !present(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
    if !running_as_root() {
        bail!(
            "the tests need {}: install the Debian package(s) {} (for example `sudo apt-get install {}`)",
            missing
                .iter()
                .map(|p| p.program)
                .collect::<Vec<_>>()
                .join(" and "),
            packages.join(", "),
            packages.join(" ")
        );
    }
    println!("xtask: installing {} for the tests", packages.join(", "));
    command::run_with_env(
        "apt-get",
        &["update"],
        &[("DEBIAN_FRONTEND", "noninteractive")],
    )?;
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&packages);
    command::run_with_env(
        "apt-get",
        &install,
        &[("DEBIAN_FRONTEND", "noninteractive")],
    )?;
    // Debian may start a system redis-server on port 6379 when it installs
    // one. The tests start their own servers on free ports and need none,
    // so stop it if it runs; failing to stop one that is not running is fine.
    let _ = std::process::Command::new("service")
        .args(["redis-server", "stop"])
        .output();
    for prerequisite in &missing {
        if !present(prerequisite) {
            bail!(
                "{} is still missing after installing the Debian package `{}`",
                prerequisite.program,
                prerequisite.package
            );
        }
    }
    Ok(())
}

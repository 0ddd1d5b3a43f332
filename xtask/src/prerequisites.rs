//! Installs the system programs the tests and the benchmarks need when
//! they are missing: `redis-server` (Debian package `redis-server`),
//! PostgreSQL's `initdb` (Debian package `postgresql`), `chromium` for the
//! browser tests, `nginx` (Debian package `nginx`), the proxy the
//! benchmarks compare proxy mode with, and `valgrind` with its
//! `callgrind_control` (Debian package `valgrind`), which count the
//! instructions the benchmarked servers execute, and `podman`, `runc` and
//! `debootstrap` (Debian packages of the same names), which build the
//! container image on a locally made base and run it, and `systemd-analyze`
//! (Debian package `systemd`), which verifies the unit file, and `objcopy`
//! (Debian package `binutils`), which takes the debug sections off the
//! image's binary. As root it installs them with
//! apt-get; otherwise it names the package to install. It never starts or
//! configures a system service: the tests and the benchmarks run their own
//! servers on free ports.

use std::path::PathBuf;

use anyhow::bail;
use warmgate_devservers::process;

use crate::command;

/// A program the tests run, and the Debian package that provides it.
struct Prerequisite {
    program: &'static str,
    package: &'static str,
    /// Folders of versions (`DIR/VERSION/bin/PROGRAM`) where the program
    /// may live when it is not on the PATH.
    elsewhere: &'static [&'static str],
    /// Folders that hold the program itself when it is not on the PATH
    /// (a user's PATH often lacks `/usr/sbin`).
    also_in: &'static [&'static str],
    /// The system service Debian may start when it installs the package.
    service: Option<&'static str>,
}

const PREREQUISITES: [Prerequisite; 11] = [
    Prerequisite {
        program: "redis-server",
        package: "redis-server",
        elsewhere: &[],
        also_in: &[],
        service: Some("redis-server"),
    },
    Prerequisite {
        program: "initdb",
        package: "postgresql",
        elsewhere: &["/usr/lib/postgresql"],
        also_in: &[],
        service: None,
    },
    Prerequisite {
        program: "chromium",
        package: "chromium",
        elsewhere: &[],
        also_in: &[],
        service: None,
    },
    Prerequisite {
        program: "nginx",
        package: "nginx",
        elsewhere: &[],
        also_in: &["/usr/sbin"],
        service: Some("nginx"),
    },
    Prerequisite {
        program: "valgrind",
        package: "valgrind",
        elsewhere: &[],
        also_in: &[],
        service: None,
    },
    Prerequisite {
        program: "callgrind_control",
        package: "valgrind",
        elsewhere: &[],
        also_in: &[],
        service: None,
    },
    Prerequisite {
        program: "podman",
        package: "podman",
        elsewhere: &[],
        also_in: &[],
        service: None,
    },
    Prerequisite {
        program: "runc",
        package: "runc",
        elsewhere: &[],
        also_in: &["/usr/sbin"],
        service: None,
    },
    Prerequisite {
        program: "debootstrap",
        package: "debootstrap",
        elsewhere: &[],
        also_in: &["/usr/sbin"],
        service: None,
    },
    Prerequisite {
        program: "systemd-analyze",
        package: "systemd",
        elsewhere: &[],
        also_in: &[],
        service: None,
    },
    Prerequisite {
        program: "objcopy",
        package: "binutils",
        elsewhere: &[],
        also_in: &[],
        service: None,
    },
];

/// Where `prerequisite`'s program is: on the PATH (by its bare name), in
/// one of its `also_in` folders, or in a version folder.
fn locate(prerequisite: &Prerequisite) -> Option<PathBuf> {
    if process::find_on_path(prerequisite.program).is_some() {
        return Some(PathBuf::from(prerequisite.program));
    }
    let beside = prerequisite
        .also_in
        .iter()
        .map(|dir| PathBuf::from(dir).join(prerequisite.program))
        .find(|path| path.is_file());
    beside.or_else(|| {
        prerequisite.elsewhere.iter().find_map(|dir| {
            std::fs::read_dir(dir).ok()?.flatten().find_map(|version| {
                let path = version.path().join("bin").join(prerequisite.program);
                path.is_file().then_some(path)
            })
        })
    })
}

/// Makes sure every prerequisite is installed: what `cargo xtask ci` needs.
pub(crate) fn ensure() -> anyhow::Result<()> {
    install_missing(PREREQUISITES.iter().collect())
}

/// Makes sure `program` (one of the prerequisites) is installed, and
/// returns the path to run it by.
pub(crate) fn ensure_program(program: &str) -> anyhow::Result<PathBuf> {
    let Some(prerequisite) = PREREQUISITES.iter().find(|p| p.program == program) else {
        bail!("`{program}` is not one of the prerequisites xtask installs");
    };
    install_missing(vec![prerequisite])?;
    match locate(prerequisite) {
        Some(path) => Ok(path),
        None => bail!(
            "{program} is missing: install the Debian package `{}`",
            prerequisite.package
        ),
    }
}

fn install_missing(wanted: Vec<&Prerequisite>) -> anyhow::Result<()> {
    let missing: Vec<&Prerequisite> = wanted.into_iter().filter(|p| locate(p).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|p| p.package).collect();
    // Two programs may come from one package (valgrind's).
    packages.sort_unstable();
    packages.dedup();
    if !process::running_as_root() {
        bail!(
            "xtask needs {}: install the Debian package(s) {} (for example `sudo apt-get install {}`)",
            missing
                .iter()
                .map(|p| p.program)
                .collect::<Vec<_>>()
                .join(" and "),
            packages.join(", "),
            packages.join(" ")
        );
    }
    println!("xtask: installing {}", packages.join(", "));
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
    // Debian may start a system redis-server on port 6379 or nginx on port
    // 80 when it installs one. The tests and the benchmarks start their own
    // on free ports and need none, so stop it if it runs; failing to stop
    // one that is not running is fine.
    for service in missing.iter().filter_map(|p| p.service) {
        let _ = std::process::Command::new("service")
            .args([service, "stop"])
            .output();
    }
    for prerequisite in &missing {
        if locate(prerequisite).is_none() {
            bail!(
                "{} is still missing after installing the Debian package `{}`",
                prerequisite.program,
                prerequisite.package
            );
        }
    }
    Ok(())
}

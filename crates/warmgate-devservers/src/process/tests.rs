//! Signals reach the process they name and no other, and the user, process
//! and program questions answer as the system does.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Stdio};

use super::*;

/// A child that would sleep for a minute unless signalled.
fn sleeper() -> std::process::Child {
    Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .expect("`sleep` runs")
}

#[test]
fn a_signal_reaches_the_process_it_names() {
    let mut child = sleeper();
    send_signal(child.id(), Signal::Terminate).expect("the child can be signalled");
    let status = child.wait().expect("the child can be waited on");
    assert_eq!(status.signal(), Some(15), "{status}");

    let mut child = sleeper();
    send_signal(child.id(), Signal::Kill).expect("the child can be signalled");
    let status = child.wait().expect("the child can be waited on");
    assert_eq!(status.signal(), Some(9), "{status}");
}

#[test]
fn a_pid_that_would_mean_a_group_is_refused() {
    for pid in [0, u32::MAX, 1 << 31] {
        let error = send_signal(pid, Signal::Continue).expect_err("not a single process");
        assert!(
            error
                .to_string()
                .contains(&format!("SIGCONT to process {pid}")),
            "{error}"
        );
    }
}

#[test]
fn a_process_is_alive_until_it_has_exited() {
    assert!(is_alive(std::process::id()));
    let mut child = sleeper();
    let pid = child.id();
    assert!(is_alive(pid));
    send_signal(pid, Signal::Kill).expect("the child can be signalled");
    // Unreaped, it is a zombie, which counts as gone.
    crate::command::wait_until(crate::command::STOP_LIMIT, "it did not exit", || {
        if is_alive(pid) {
            crate::command::Progress::NotYet
        } else {
            crate::command::Progress::Done
        }
    })
    .expect("a killed child is gone before it is reaped");
    child.wait().expect("the child can be waited on");
    assert!(!is_alive(pid));
}

#[test]
fn the_current_uid_is_the_one_proc_reports() {
    let status = fs::read_to_string("/proc/self/status").expect("/proc is mounted");
    // Real, effective, saved and file system ids, in that order.
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|uid| uid.parse::<u32>().ok())
        .expect("a Uid line");
    assert_eq!(current_uid(), effective_uid);
    assert_eq!(running_as_root(), effective_uid == 0);
}

#[test]
fn users_are_found_by_their_whole_name() {
    let passwd = "# a comment:x\nroot:x:0:0:root:/root:/bin/bash\npostgres:x:104:111::/var/lib/postgresql:/bin/bash\n";
    assert!(passwd_has_user(passwd, "root"));
    assert!(passwd_has_user(passwd, "postgres"));
    assert!(!passwd_has_user(passwd, "post"));
    assert!(!passwd_has_user(passwd, "# a comment"));
    assert!(!passwd_has_user(passwd, ""));
    assert!(user_exists("root").expect("/etc/passwd is readable"));
    assert!(!user_exists("warmgate-no-such-user").expect("/etc/passwd is readable"));
}

#[test]
fn programs_are_found_on_the_path_when_executable() {
    let sh = find_on_path("sh").expect("sh is on the PATH");
    assert!(
        sh.ends_with("sh") && is_executable_file(&sh),
        "{}",
        sh.display()
    );
    assert!(find_on_path("warmgate-no-such-program").is_none());
    // A file that is not executable is not a program.
    assert!(!is_executable_file(Path::new("/etc/passwd")));
}

#[test]
fn signals_are_named_as_kill_names_them() {
    assert_eq!(Signal::Terminate.to_string(), "SIGTERM");
    assert_eq!(Signal::Hangup.name(), "HUP");
}

//! `cargo xtask web-test`: the JavaScript client's tests and the chat
//! page's browser tests, against the real warmgate program.
//!
//! It installs `playwright-core` (pinned in `web/package-lock.json`) with
//! `npm ci`, builds warmgate, and runs `node --test` on `web/test/`, with
//! `WARMGATE_BIN` naming the program, `CHROMIUM` Debian's Chromium and
//! `WARMGATE_SCREENSHOTS` where the page's screenshots go (`docs/img`, or
//! under `target/` during `cargo xtask ci`).
//! Node's own WebSocket (`--experimental-websocket` on Node 20) is the
//! client's transport in the Node tests; the browser tests drive Chromium
//! headless through playwright-core.

use anyhow::{Context as _, bail};

use crate::command::{self, workspace_root};
use crate::server::target_dir;

/// Where Debian's `chromium` package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) fn run() -> anyhow::Result<()> {
    if !std::path::Path::new(CHROMIUM).is_file() {
        bail!(
            "the browser tests need {CHROMIUM}: install Debian's `chromium` package (`cargo xtask ci` does, as root)"
        );
    }
    command::run("npm", &["ci", "--prefix", "web", "--no-audit", "--no-fund"])?;
    command::run("cargo", &["build", "-p", "warmgate"])?;
    let program = target_dir().join("debug").join("warmgate");
    let program = program.display().to_string();
    // The `*.test.mjs` files; `gateway.mjs` beside them is their helper.
    let test_dir = workspace_root().join("web").join("test");
    let mut tests: Vec<String> = std::fs::read_dir(&test_dir)
        .with_context(|| format!("cannot list {}", test_dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".test.mjs"))
        .map(|path| path.display().to_string())
        .collect();
    tests.sort();
    let mut args = vec![
        "--experimental-websocket",
        "--no-warnings=ExperimentalWarning",
        "--test",
        "--test-concurrency=1",
        // A test waits on events; a broken client must fail, not hang CI.
        "--test-timeout=60000",
    ];
    args.extend(tests.iter().map(String::as_str));
    let screenshots = crate::ci::docs_dir().join("img").display().to_string();
    command::run_with_env(
        "node",
        &args,
        &[
            ("WARMGATE_BIN", &program),
            ("CHROMIUM", CHROMIUM),
            ("WARMGATE_SCREENSHOTS", &screenshots),
        ],
    )
}

//! `cargo xtask docs`: regenerates every report and picture under `docs/`
//! that a run produces, in one command. `cargo xtask ci` writes the same
//! reports under `target/ci-docs/` instead, so a CI run leaves the tree as
//! it found it ([`crate::ci::docs_dir`]); this is how `docs/` is refreshed
//! on purpose, and the diff is then reviewed and committed like any other.
//!
//! In order: the chat page's screenshots (`docs/img/`, from `web-test`),
//! the chaos and soak sections of `docs/reliability.md`, and, unless
//! `--skip-bench`, `docs/benchmarks.md` from the full benchmark run (the
//! longest part). Each piece can also be refreshed alone by its own
//! command.

use crate::{bench, chaos, soak, web_test};

/// `cargo xtask docs` options.
#[derive(Debug, Default, PartialEq, clap::Args)]
pub(crate) struct DocsArgs {
    /// Leave docs/benchmarks.md alone (the full benchmark run takes the
    /// longest)
    #[arg(long)]
    pub(crate) skip_bench: bool,
}

pub(crate) fn run(args: &DocsArgs) -> anyhow::Result<()> {
    web_test::run()?;
    chaos::run(&chaos::ChaosArgs::default())?;
    soak::run(&soak::SoakArgs::default())?;
    if !args.skip_bench {
        bench::run(&bench::BenchArgs { quick: false })?;
    }
    println!("docs: regenerated under docs/; review the diff before committing it");
    Ok(())
}

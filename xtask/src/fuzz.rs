//! `cargo xtask fuzz`: coverage-guided fuzzing of every parser that sees
//! outside input, with libFuzzer, on the stable toolchain.
//!
//! It builds the binaries of the `fuzz/` workspace (one per file in
//! `fuzz/fuzz_targets/`) with the stable subset of cargo-fuzz's codegen
//! flags, into `target/fuzz`, then runs each target for the given time on
//! its committed corpus (`fuzz/corpus/<target>/`), writing what it finds to
//! a scratch corpus under `target/fuzz/corpus/<target>/` so the committed
//! one changes only when asked (`--merge`). A crash is copied to
//! `fuzz/regressions/<target>/` and fails the run; `docs/fuzzing.md` says
//! how it becomes a regression test. libFuzzer's output goes to
//! `target/fuzz/logs/<target>.log`; a summary of each run is printed.
//!
//! Nothing here needs nightly or cargo-fuzz: libfuzzer-sys builds libFuzzer
//! from source with the system C++ compiler, and every flag below is stable.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use warmgate_devservers::process;

use crate::command::workspace_root;
use crate::server::target_dir;

/// How long each target runs unless told otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// What a run fuzzes, and for how long (`cargo xtask fuzz`'s options).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct FuzzArgs {
    /// How long each target runs, in whole seconds above 0
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) seconds: u64,
    /// Run only this target; may be repeated (default: all of
    /// fuzz/fuzz_targets/)
    #[arg(long = "target", value_name = "NAME")]
    pub(crate) targets: Vec<String>,
    /// Afterwards, choose again the found inputs kept in
    /// fuzz/corpus/<target>/, from those and the new ones, for coverage: up
    /// to 80 files a target, hand-written seeds always kept
    // The 80 is [`CORPUS_FILES_PER_TARGET`].
    #[arg(long)]
    pub(crate) merge: bool,
    /// How many targets run at once (default, 0: one per core)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) jobs: usize,
}

impl Default for FuzzArgs {
    fn default() -> Self {
        Self {
            seconds: DEFAULT_SECONDS,
            targets: Vec::new(),
            merge: false,
            jobs: 0,
        }
    }
}

/// The instrumentation: the stable flags among those cargo-fuzz passes.
/// Left out: `-Zsanitizer=address` (nightly only; the code forbids
/// `unsafe`, so memory errors are not what the fuzzer hunts here), and
/// `-Clink-dead-code`, which serves coverage reports and makes every
/// binary bigger and slower to link. Debug
/// assertions, overflow checks and one codegen unit come from the `fuzz`
/// profile in `fuzz/Cargo.toml`.
const INSTRUMENTATION: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "-Cllvm-args=-sanitizer-coverage-stack-depth",
    "-Cllvm-args=-simplifycfg-branch-fold-threshold=0",
    "--cfg",
    "fuzzing",
];

/// A single input that takes longer than this is a finding (a hang).
const INPUT_TIMEOUT_SECONDS: u64 = 10;

/// `--merge` fills a target's committed corpus up to this many files, and
/// warns when the whole committed corpus grows past this many bytes.
const CORPUS_FILES_PER_TARGET: usize = 80;
const CORPUS_BYTES_LIMIT: u64 = 1024 * 1024;

/// Builds the fuzz binaries and runs the chosen targets.
pub(crate) fn run(args: &FuzzArgs) -> anyhow::Result<()> {
    let all_targets = targets()?;
    for name in &args.targets {
        if !all_targets.contains(name) {
            bail!(
                "there is no fuzz target `{name}`; the targets are: {}",
                all_targets.join(", ")
            );
        }
    }
    let chosen: Vec<String> = if args.targets.is_empty() {
        all_targets
    } else {
        all_targets
            .into_iter()
            .filter(|name| args.targets.contains(name))
            .collect()
    };
    let started = Instant::now();
    let binaries = build(&chosen)?;
    let built_in = started.elapsed();
    println!("xtask: fuzz binaries built in {:.0?}", built_in);

    let jobs = if args.jobs == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        args.jobs
    };
    println!(
        "xtask: fuzzing {} for {} s each, {} at a time; libFuzzer's output is in {}",
        chosen.join(", "),
        args.seconds,
        jobs.min(chosen.len()),
        fuzz_target_dir().join("logs").display()
    );
    let queue = Mutex::new(binaries.into_iter().rev().collect::<Vec<_>>());
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(chosen.len()) {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut queue| queue.pop());
                    let Ok(Some(binary)) = next else {
                        break;
                    };
                    let outcome = fuzz_one(&binary, args.seconds);
                    if let Ok(mut outcomes) = outcomes.lock() {
                        outcomes.push((binary, outcome));
                    }
                }
            });
        }
    });
    let mut outcomes = outcomes
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a fuzzing thread panicked"))?;
    outcomes.sort_by(|a, b| a.0.name.cmp(&b.0.name));

    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (binary, outcome) in outcomes {
        match outcome {
            Ok(report) => {
                if report.crashes.is_empty() && args.merge {
                    merge(&binary)?;
                }
                if !report.crashes.is_empty() {
                    failures.push((binary.clone(), report.crashes.clone()));
                }
                reports.push(report);
            }
            Err(error) => failures.push((binary, vec![format!("{error:#}")])),
        }
    }
    print_summary(&reports);
    println!(
        "xtask: fuzzing took {:.0?} in all ({:.0?} of it building)",
        started.elapsed(),
        built_in
    );
    if !failures.is_empty() {
        let mut message = String::from("the fuzzer found crashes:");
        for (binary, crashes) in &failures {
            for crash in crashes {
                message.push_str(&format!("\n  {}: {crash}", binary.name));
                if crash.starts_with("fuzz/regressions/") {
                    let program = binary
                        .path
                        .strip_prefix(workspace_root())
                        .unwrap_or(&binary.path);
                    message.push_str(&format!("\n    replay: {} {crash}", program.display()));
                }
            }
        }
        message.push_str(
            "\nFix each bug, and add a test for its file to \
             crates/warmgate-fuzz-targets/tests/regressions.rs (docs/fuzzing.md).",
        );
        bail!(message);
    }
    Ok(())
}

/// The targets: the file stems in `fuzz/fuzz_targets/`, sorted.
fn targets() -> anyhow::Result<Vec<String>> {
    let dir = workspace_root().join("fuzz").join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("{} holds no fuzz targets", dir.display());
    }
    Ok(names)
}

fn fuzz_target_dir() -> PathBuf {
    target_dir().join("fuzz")
}

/// A built fuzz binary.
#[derive(Debug, Clone)]
struct Binary {
    name: String,
    path: PathBuf,
}

/// Builds the binaries of `targets` with the coverage instrumentation.
fn build(targets: &[String]) -> anyhow::Result<Vec<Binary>> {
    if !(process::find_on_path("c++").is_some() || std::env::var_os("CXX").is_some()) {
        bail!(
            "libfuzzer-sys compiles libFuzzer with the system C++ compiler, and there is no `c++` \
             on the PATH: install g++ (Debian package `g++`) or set CXX"
        );
    }
    let host = host_triple()?;
    let mut rustflags = INSTRUMENTATION.join(" ");
    if let Ok(extra) = std::env::var("RUSTFLAGS") {
        rustflags.push(' ');
        rustflags.push_str(&extra);
    }
    let manifest = workspace_root().join("fuzz").join("Cargo.toml");
    let target_dir = fuzz_target_dir();
    // `--target` keeps RUSTFLAGS away from build scripts and proc macros,
    // which run on the host and would not link with the instrumentation.
    let mut args = vec![
        "build".to_owned(),
        "--manifest-path".to_owned(),
        manifest.display().to_string(),
        "--profile".to_owned(),
        "fuzz".to_owned(),
        "--target".to_owned(),
        host.clone(),
    ];
    for target in targets {
        args.push("--bin".to_owned());
        args.push(target.clone());
    }
    println!("$ RUSTFLAGS=\"{rustflags}\" cargo {}", args.join(" "));
    let status = crate::command::cargo()
        .args(&args)
        .env("RUSTFLAGS", &rustflags)
        .env("CARGO_TARGET_DIR", &target_dir)
        // These would override RUSTFLAGS.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .status()
        .context("cannot start cargo")?;
    if !status.success() {
        bail!("building the fuzz binaries failed with {status}");
    }
    Ok(targets
        .iter()
        .map(|name| Binary {
            name: name.clone(),
            path: target_dir.join(&host).join("fuzz").join(name),
        })
        .collect())
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> anyhow::Result<String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot run `rustc -vV`")?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host")
}

/// What one target's run did.
#[derive(Debug, Clone, Default)]
struct Report {
    name: String,
    runs: Option<u64>,
    execs_per_second: Option<u64>,
    new_units: Option<u64>,
    /// libFuzzer's last status line: coverage, features, corpus.
    last_status: Option<String>,
    /// The reproductions copied into `fuzz/regressions/<target>/`.
    crashes: Vec<String>,
    took: Duration,
}

/// Runs one target for `seconds`; a crash is a report with `crashes`, an
/// error is a fuzzer that could not run at all.
fn fuzz_one(binary: &Binary, seconds: u64) -> anyhow::Result<Report> {
    let fuzz_dir = workspace_root().join("fuzz");
    let committed = fuzz_dir.join("corpus").join(&binary.name);
    let scratch = fuzz_target_dir().join("corpus").join(&binary.name);
    let artifacts = fuzz_target_dir().join("artifacts").join(&binary.name);
    let logs = fuzz_target_dir().join("logs");
    for dir in [&committed, &scratch, &logs] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Only this run's crashes are in the artifact directory afterwards.
    if artifacts.exists() {
        std::fs::remove_dir_all(&artifacts)
            .with_context(|| format!("cannot empty {}", artifacts.display()))?;
    }
    std::fs::create_dir_all(&artifacts)
        .with_context(|| format!("cannot create {}", artifacts.display()))?;
    let log_path = logs.join(format!("{}.log", binary.name));
    let mut command = Command::new(&binary.path);
    command
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    let dictionary = fuzz_dir
        .join("dictionaries")
        .join(format!("{}.dict", binary.name));
    if dictionary.is_file() {
        command.arg(format!("-dict={}", dictionary.display()));
    }
    // New inputs go to the first directory: the scratch corpus.
    command.arg(&scratch).arg(&committed);
    let started = Instant::now();
    println!("xtask: fuzzing {} ({})", binary.name, binary.path.display());
    let status = run_logged(&mut command, binary, &log_path)?;
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut report = parse_log(&binary.name, &log_text);
    report.took = started.elapsed();
    if status.success() {
        return Ok(report);
    }
    println!(
        "xtask: {} failed with {status}; the end of its log ({}):",
        binary.name,
        log_path.display()
    );
    let lines: Vec<&str> = log_text.lines().collect();
    for line in &lines[lines.len().saturating_sub(60)..] {
        println!("  | {line}");
    }
    report.crashes = keep_reproductions(&binary.name, &artifacts)?;
    if report.crashes.is_empty() {
        report.crashes.push(format!(
            "libFuzzer failed with {status} and left no reproduction; see {}",
            log_path.display()
        ));
    }
    Ok(report)
}

/// Runs `command` (`binary` with its arguments) from the workspace root,
/// with its output in a new file at `log_path`, and waits for it.
fn run_logged(
    command: &mut Command,
    binary: &Binary,
    log_path: &Path,
) -> anyhow::Result<std::process::ExitStatus> {
    let log = std::fs::File::create(log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    command
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("cannot share the log file")?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot start {}", binary.path.display()))
}

/// Copies each artifact of a failed run into `fuzz/regressions/<target>/`
/// and prints it, so a CI log alone is enough to reproduce it.
fn keep_reproductions(name: &str, artifacts: &Path) -> anyhow::Result<Vec<String>> {
    let regressions = workspace_root().join("fuzz").join("regressions").join(name);
    std::fs::create_dir_all(&regressions)
        .with_context(|| format!("cannot create {}", regressions.display()))?;
    let mut kept = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(artifacts)
        .with_context(|| format!("cannot list {}", artifacts.display()))?
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.sort();
    for file in files {
        let Some(file_name) = file.file_name() else {
            continue;
        };
        let destination = regressions.join(file_name);
        std::fs::copy(&file, &destination).with_context(|| {
            format!(
                "cannot copy {} to {}",
                file.display(),
                destination.display()
            )
        })?;
        let bytes = std::fs::read(&destination).unwrap_or_default();
        println!(
            "xtask: {name}: kept {} ({} bytes): {}",
            destination.display(),
            bytes.len(),
            escaped(&bytes)
        );
        kept.push(
            destination
                .strip_prefix(workspace_root())
                .unwrap_or(&destination)
                .display()
                .to_string(),
        );
    }
    Ok(kept)
}

/// The bytes as a Rust byte string literal, cut at 2 KiB.
fn escaped(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(2048)];
    let mut text: String = shown.escape_ascii().to_string();
    if shown.len() < bytes.len() {
        text.push_str("...");
    }
    format!("b\"{text}\"")
}

/// Reads libFuzzer's final statistics and last status line.
fn parse_log(name: &str, log: &str) -> Report {
    let stat = |key: &str| {
        log.lines()
            .rev()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|value| value.trim().parse().ok())
    };
    let last_status = log
        .lines()
        .rev()
        .find(|line| line.starts_with('#') && line.contains(" cov: "))
        .map(|line| {
            line.split_whitespace()
                .skip_while(|word| *word != "cov:")
                .take(6)
                .collect::<Vec<_>>()
                .join(" ")
        });
    Report {
        name: name.to_owned(),
        runs: stat("stat::number_of_executed_units:"),
        execs_per_second: stat("stat::average_exec_per_sec:"),
        new_units: stat("stat::new_units_added:"),
        last_status,
        crashes: Vec::new(),
        took: Duration::ZERO,
    }
}

/// Chooses the found inputs of the committed corpus again, from the
/// committed and the scratch ones together: greedily, the input that
/// reaches the most code the seeds and the inputs chosen so far do not,
/// until the target has [`CORPUS_FILES_PER_TARGET`] files. libFuzzer's set-cover merge, run
/// with a control file, lists every feature (with `-use_counters=0`, every
/// edge) that each input reaches; the choice is made here because
/// libFuzzer's own merge keeps every input that adds anything, which is
/// hundreds of inputs a target.
fn merge(binary: &Binary) -> anyhow::Result<()> {
    let committed = workspace_root()
        .join("fuzz")
        .join("corpus")
        .join(&binary.name);
    let scratch = fuzz_target_dir().join("corpus").join(&binary.name);
    let work = fuzz_target_dir().join("merge").join(&binary.name);
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot empty {}", work.display()))?;
    }
    let unused_output = work.join("output");
    std::fs::create_dir_all(&unused_output)
        .with_context(|| format!("cannot create {}", unused_output.display()))?;
    let control_file = work.join("control");
    let log_path = fuzz_target_dir()
        .join("logs")
        .join(format!("{}.merge.log", binary.name));
    // Hit counts make every loop length a new feature; edges are enough
    // to tell inputs apart.
    let mut command = Command::new(&binary.path);
    command
        .arg("-set_cover_merge=1")
        .arg("-use_counters=0")
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg(format!("-merge_control_file={}", control_file.display()))
        .arg(&unused_output)
        .arg(&committed)
        .arg(&scratch);
    let status = run_logged(&mut command, binary, &log_path)?;
    if !status.success() {
        bail!(
            "merging {}'s corpus failed with {status}; see {}",
            binary.name,
            log_path.display()
        );
    }
    let control = std::fs::read_to_string(&control_file)
        .with_context(|| format!("cannot read {}", control_file.display()))?;
    let inputs = read_control_file(&control)
        .with_context(|| format!("cannot understand {}", control_file.display()))?;

    // Seeds (hand-written, with descriptive names) always stay; the found
    // inputs (named by their SHA-1) are chosen again from the committed
    // and the scratch ones together, so a better input can replace one.
    let mut reached: HashSet<u64> = HashSet::new();
    let mut candidates: Vec<MergeInput> = Vec::new();
    let mut names = HashSet::new();
    for input in inputs {
        let name = input
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if input.path.starts_with(&committed) && !is_found_input(&name) {
            reached.extend(&input.features);
        } else if names.insert(name) {
            candidates.push(input);
        }
    }
    // Counted from the directory: libFuzzer skips an empty seed.
    let seeds = std::fs::read_dir(&committed)
        .with_context(|| format!("cannot list {}", committed.display()))?
        .flatten()
        .filter(|entry| !is_found_input(&entry.file_name().to_string_lossy()))
        .count();
    let before = corpus_size(&committed);
    let room = CORPUS_FILES_PER_TARGET.saturating_sub(seeds);
    let mut chosen = Vec::new();
    while chosen.len() < room {
        let best = candidates
            .iter()
            .enumerate()
            .map(|(index, input)| {
                let new_features = input
                    .features
                    .iter()
                    .filter(|feature| !reached.contains(feature))
                    .count();
                (new_features, std::cmp::Reverse(input.size), index)
            })
            .max();
        let Some((new_features, _, index)) = best else {
            break;
        };
        if new_features == 0 {
            break;
        }
        let input = candidates.swap_remove(index);
        reached.extend(&input.features);
        chosen.push(input);
    }
    // Copy the chosen inputs first, then drop the found inputs that were
    // not chosen, so the corpus is never left emptier than before.
    let mut kept_names = HashSet::new();
    for input in &chosen {
        let name = input.path.file_name().unwrap_or_default();
        kept_names.insert(name.to_os_string());
        let destination = committed.join(name);
        if input.path != destination {
            std::fs::copy(&input.path, &destination).with_context(|| {
                format!(
                    "cannot copy {} to {}",
                    input.path.display(),
                    destination.display()
                )
            })?;
        }
    }
    for entry in std::fs::read_dir(&committed)
        .with_context(|| format!("cannot list {}", committed.display()))?
        .flatten()
    {
        let name = entry.file_name();
        if is_found_input(&name.to_string_lossy()) && !kept_names.contains(&name) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    let unreached: HashSet<u64> = candidates
        .iter()
        .flat_map(|input| input.features.iter().copied())
        .filter(|edge| !reached.contains(edge))
        .collect();
    let after = corpus_size(&committed);
    println!(
        "xtask: {}: fuzz/corpus/{}/ went from {} to {} files ({} seeds and {} found \
         inputs, chosen for coverage), {} bytes{}",
        binary.name,
        binary.name,
        before.files,
        after.files,
        seeds,
        chosen.len(),
        after.bytes,
        if unreached.is_empty() {
            String::new()
        } else {
            format!(
                "; {} features (edges) that the fuzzer reached are left out, past the cap of \
                 {CORPUS_FILES_PER_TARGET} files",
                unreached.len()
            )
        }
    );
    let total = corpus_size_all();
    if total.bytes > CORPUS_BYTES_LIMIT {
        println!(
            "xtask: warning: the committed corpus is {} bytes in all, over {CORPUS_BYTES_LIMIT}: \
             drop its largest files before committing",
            total.bytes
        );
    }
    Ok(())
}

/// True for the name libFuzzer gives an input it found: 40 hex digits
/// (its SHA-1). Hand-written seeds have descriptive names.
fn is_found_input(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// One input of a merge, as its control file describes it.
#[derive(Debug)]
struct MergeInput {
    path: PathBuf,
    size: u64,
    /// The features it reaches: its coverage edges, with `-use_counters=0`.
    features: Vec<u64>,
}

/// Reads libFuzzer's merge control file: the number of inputs, the number
/// of them in the output directory, their paths, then for each input
/// `STARTED <index> <size>`, `FT <index> <features>…` and
/// `COV <index> <edges>…`. In a set-cover merge `FT` lists all of an
/// input's features; `COV` only the edges no earlier input reached.
fn read_control_file(text: &str) -> Option<Vec<MergeInput>> {
    let mut lines = text.lines();
    let count: usize = lines.next()?.trim().parse().ok()?;
    let _in_output: usize = lines.next()?.trim().parse().ok()?;
    let mut inputs: Vec<MergeInput> = lines
        .by_ref()
        .take(count)
        .map(|path| MergeInput {
            path: PathBuf::from(path),
            size: 0,
            features: Vec::new(),
        })
        .collect();
    for line in lines {
        let mut words = line.split_whitespace();
        let kind = words.next();
        let Some(input) = words
            .next()
            .and_then(|index| index.parse::<usize>().ok())
            .and_then(|index| inputs.get_mut(index))
        else {
            continue;
        };
        match kind {
            Some("STARTED") => {
                input.size = words.next().and_then(|size| size.parse().ok()).unwrap_or(0);
            }
            Some("FT") => {
                input.features = words.filter_map(|feature| feature.parse().ok()).collect();
            }
            _ => {}
        }
    }
    Some(inputs)
}

#[derive(Debug, Clone, Copy, Default)]
struct CorpusSize {
    files: usize,
    bytes: u64,
}

fn corpus_size(dir: &Path) -> CorpusSize {
    let mut size = CorpusSize::default();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_file() {
            size.files += 1;
            size.bytes += metadata.len();
        }
    }
    size
}

fn corpus_size_all() -> CorpusSize {
    let root = workspace_root().join("fuzz").join("corpus");
    let mut total = CorpusSize::default();
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let size = corpus_size(&entry.path());
        total.files += size.files;
        total.bytes += size.bytes;
    }
    total
}

fn print_summary(reports: &[Report]) {
    println!();
    println!(
        "{:<20} {:>6} {:>11} {:>10} {:>9} {:>15}  result",
        "target", "time", "runs", "execs/s", "new", "corpus"
    );
    for report in reports {
        let corpus = corpus_size(
            &workspace_root()
                .join("fuzz")
                .join("corpus")
                .join(&report.name),
        );
        let number = |value: Option<u64>| value.map_or_else(|| "?".to_owned(), |n| n.to_string());
        let result = if report.crashes.is_empty() {
            "ok".to_owned()
        } else {
            format!("{} crash(es)", report.crashes.len())
        };
        println!(
            "{:<20} {:>6} {:>11} {:>10} {:>9} {:>15}  {result}",
            report.name,
            format!("{} s", report.took.as_secs()),
            number(report.runs),
            number(report.execs_per_second),
            number(report.new_units),
            format!("{} / {} KiB", corpus.files, corpus.bytes / 1024),
        );
        if let Some(status) = &report.last_status {
            println!("{:<20} {status}", "");
        }
    }
    println!();
}

//! Micro-benchmark of the hot-path snapshot reads that every connection
//! handler makes: `current()` (an `Arc` clone out of the `ArcSwap`) and
//! `with_current()` (a borrow, no reference count touched). Both take no
//! lock and never await. Run with `cargo bench -p warmgate-engine`.

use std::time::Duration;

use warmgate_core::{CheckSpec, PhaseSpec, Plan};
use warmgate_engine::{EngineBuilder, EngineSettings, ReadinessHandle};

fn main() {
    divan::main();
}

fn handle(runtime: &tokio::runtime::Runtime) -> ReadinessHandle {
    let plan = Plan::new(
        vec![PhaseSpec {
            name: "services".into(),
            checks: vec![CheckSpec::new("agent", "signal")],
        }],
        Duration::from_secs(60),
    )
    .expect("a valid plan");
    let _guard = runtime.enter();
    EngineBuilder::new(plan, EngineSettings::default())
        .signal("agent")
        .expect("agent is in the plan")
        .spawn()
        .expect("every check has a driver")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[divan::bench]
fn current_arc(bencher: divan::Bencher<'_, '_>) {
    let runtime = runtime();
    let handle = handle(&runtime);
    bencher.bench(|| divan::black_box(handle.current()));
}

#[divan::bench]
fn with_current_state(bencher: divan::Bencher<'_, '_>) {
    let runtime = runtime();
    let handle = handle(&runtime);
    bencher.bench(|| handle.with_current(|snapshot| divan::black_box(snapshot.state)));
}

#[divan::bench(threads = [2])]
fn current_arc_contended(bencher: divan::Bencher<'_, '_>) {
    let runtime = runtime();
    let handle = handle(&runtime);
    bencher.bench(|| divan::black_box(handle.current()));
}

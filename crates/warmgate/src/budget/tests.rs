//! The budget's clock and its backstop, with the backstop's exit replaced
//! by a message.

use std::sync::mpsc;

use super::*;

#[test]
fn nothing_is_left_or_elapsed_before_the_drain_starts() {
    let budget = ShutdownBudget::new(Duration::from_secs(10));
    assert_eq!(budget.remaining(), None);
    assert_eq!(budget.elapsed(), None);
}

#[test]
fn the_flush_gets_what_is_left_less_the_exit_slack() {
    let budget = ShutdownBudget::new(Duration::from_secs(10));
    let (spent_tx, _spent_rx) = mpsc::channel();
    budget.start_with(move || {
        let _ = spent_tx.send(());
    });
    let remaining = budget.remaining().unwrap();
    assert!(
        remaining <= Duration::from_secs(10) - EXIT_SLACK,
        "{remaining:?}"
    );
    assert!(remaining > Duration::from_secs(9), "{remaining:?}");
    assert!(budget.elapsed().unwrap() < Duration::from_secs(1));
}

#[test]
fn the_backstop_fires_once_at_the_deadline_of_the_first_start() {
    let budget = ShutdownBudget::new(Duration::from_millis(50));
    let (spent_tx, spent_rx) = mpsc::channel();
    let started = Instant::now();
    let first = spent_tx.clone();
    budget.start_with(move || first.send("first").unwrap());
    // A second start (the signal, then the published `draining`) neither
    // moves the deadline nor arms a second backstop.
    budget.start_with(move || spent_tx.send("second").unwrap());
    assert_eq!(spent_rx.recv_timeout(Duration::from_secs(10)), Ok("first"));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(budget.remaining(), Some(Duration::ZERO));
    // The second closure was dropped unrun, so the channel is now closed.
    assert_eq!(
        spent_rx.recv_timeout(Duration::from_secs(1)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
}

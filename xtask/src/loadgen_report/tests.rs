//! A report reads as its type, and a drifted one is an error that names
//! the field.

use serde_json::json;
use warmgate_loadgen::report::{EchoReport, HoldReport, Timings};

use super::*;

fn echo() -> serde_json::Value {
    json!({
        "round_trip": { "n": 3, "p50_us": 10.0, "p99_us": 20.0, "max_us": 21.0, "mean_us": 12.0 },
        "size": 43,
    })
}

#[test]
fn a_report_reads_as_its_type() {
    let report: EchoReport = parse(&format!("{}\n", echo())).unwrap();
    assert_eq!(
        report.round_trip,
        Some(Timings {
            n: 3,
            p50_us: 10.0,
            p99_us: 20.0,
            max_us: 21.0,
            mean_us: 12.0
        })
    );
    assert_eq!(from_value::<EchoReport>(&echo()).unwrap(), report);
}

#[test]
fn a_missing_field_is_an_error_that_names_it() {
    let mut drifted = echo();
    drifted["round_trip"]
        .as_object_mut()
        .unwrap()
        .remove("p99_us");
    let error = parse::<EchoReport>(&drifted.to_string())
        .unwrap_err()
        .to_string();
    assert!(error.contains("`EchoReport`"), "{error}");
    assert!(error.contains("at `round_trip`"), "{error}");
    assert!(error.contains("missing field `p99_us`"), "{error}");
}

#[test]
fn a_renamed_field_is_an_error_that_names_it() {
    let mut drifted = echo();
    let size = drifted.as_object_mut().unwrap().remove("size").unwrap();
    drifted["size_bytes"] = size;
    let error = from_value::<EchoReport>(&drifted).unwrap_err().to_string();
    assert!(error.contains("unknown field `size_bytes`"), "{error}");
}

#[test]
fn an_unknown_field_is_an_error_that_names_it() {
    let mut drifted = echo();
    drifted["round_trip"]["p90_us"] = json!(15.0);
    let error = parse::<EchoReport>(&drifted.to_string())
        .unwrap_err()
        .to_string();
    assert!(error.contains("at `round_trip.p90_us`"), "{error}");
}

#[test]
fn a_report_of_another_scenario_or_no_report_is_an_error() {
    assert!(parse::<HoldReport>(&echo().to_string()).is_err());
    let error = parse::<EchoReport>("").unwrap_err().to_string();
    assert!(error.contains("at the top"), "{error}");
    let error = parse::<EchoReport>(&format!("{} {{}}", echo()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("after the report"), "{error}");
}

//! Unit tests of `trace_context`.

use axum::http::HeaderValue;

use super::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    headers
}

fn parent_of(pairs: &[(&'static str, &'static str)]) -> Option<(SpanContext, ParentSource)> {
    remote_parent(&headers(pairs))
        .map(|(context, source)| (context.span().span_context().clone(), source))
}

#[test]
fn a_traceparent_is_the_parent() {
    let (parent, source) = parent_of(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )])
    .unwrap();
    assert_eq!(source, ParentSource::TraceParent);
    assert_eq!(parent.trace_id().to_string(), TRACE_ID);
    assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
    assert!(parent.is_sampled());
    assert!(parent.is_remote());
}

#[test]
fn the_cloud_run_header_is_used_when_there_is_no_traceparent() {
    let (parent, source) = parent_of(&[(
        "x-cloud-trace-context",
        "4bf92f3577b34da6a3ce929d0e0e4736/1234567890123456789;o=1",
    )])
    .unwrap();
    assert_eq!(source, ParentSource::CloudTraceContext);
    assert_eq!(parent.trace_id().to_string(), TRACE_ID);
    // 1234567890123456789 = 0x112210f47de98115
    assert_eq!(parent.span_id().to_string(), "112210f47de98115");
    assert!(parent.is_sampled());
}

#[test]
fn traceparent_wins_over_the_cloud_run_header() {
    let (parent, source) = parent_of(&[
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        ),
        (
            "x-cloud-trace-context",
            "4bf92f3577b34da6a3ce929d0e0e4736/1;o=1",
        ),
    ])
    .unwrap();
    assert_eq!(source, ParentSource::TraceParent);
    assert_eq!(
        parent.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert!(!parent.is_sampled());
}

#[test]
fn a_bad_traceparent_falls_back_to_the_cloud_run_header() {
    let (_, source) = parent_of(&[
        ("traceparent", "00-nothex-b7ad6b7169203331-01"),
        (
            "x-cloud-trace-context",
            "4bf92f3577b34da6a3ce929d0e0e4736/7;o=0",
        ),
    ])
    .unwrap();
    assert_eq!(source, ParentSource::CloudTraceContext);
}

#[test]
fn cloud_run_header_options_and_malformed_values() {
    let sampled = |value| parse_cloud_trace_context(value).map(|context| context.is_sampled());
    assert_eq!(sampled("4bf92f3577b34da6a3ce929d0e0e4736/7"), Some(false));
    assert_eq!(
        sampled("4bf92f3577b34da6a3ce929d0e0e4736/7;o=0"),
        Some(false)
    );
    assert_eq!(
        sampled("4bf92f3577b34da6a3ce929d0e0e4736/7;o=3"),
        Some(true)
    );
    for malformed in [
        "",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "4bf92f3577b34da6a3ce929d0e0e4736/",
        "4bf92f3577b34da6a3ce929d0e0e4736/0;o=1",
        "4bf92f3577b34da6a3ce929d0e0e4736/-5;o=1",
        "4bf92f3577b34da6a3ce929d0e0e4736/abc;o=1",
        "4bf92f3577b34da6a3ce929d0e0e4736/18446744073709551616;o=1",
        "4bf92f3577b34da6a3ce929d0e0e4736/7;x=1",
        "00000000000000000000000000000000/7;o=1",
        "4bf92f3577b34da6a3ce929d0e0e47/7;o=1",
        "+bf92f3577b34da6a3ce929d0e0e4736/7;o=1",
        "4bf92f3577b34da6a3ce929d0e0e4736/7;o=",
    ] {
        assert_eq!(parse_cloud_trace_context(malformed), None, "{malformed:?}");
    }
    assert_eq!(parent_of(&[]), None);
}

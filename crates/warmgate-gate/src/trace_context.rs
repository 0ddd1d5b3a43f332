//! The caller's trace, read from the upgrade request, so that a connection's
//! span joins the trace of whoever opened it.
//!
//! A W3C `traceparent` wins. Without one, Cloud Run's legacy
//! `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS` is used, where the
//! span id is decimal and `o=1` means sampled. A header that does not parse
//! is ignored: the connection then starts a trace of its own.

use axum::http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Cloud Run's legacy trace header.
pub(crate) const CLOUD_TRACE_HEADER: &str = "x-cloud-trace-context";

/// The W3C Trace Context header (section 3.2) the propagator reads.
const TRACEPARENT_HEADER: &str = "traceparent";

/// Where a connection's parent came from, for its span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParentSource {
    TraceParent,
    CloudTraceContext,
}

impl ParentSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ParentSource::TraceParent => "traceparent",
            ParentSource::CloudTraceContext => "x-cloud-trace-context",
        }
    }
}

/// The remote parent named by the request's headers, if any.
pub(crate) fn remote_parent(headers: &HeaderMap) -> Option<(Context, ParentSource)> {
    // Most clients send neither header; the propagator would build and
    // drop a context for nothing.
    if !headers.contains_key(TRACEPARENT_HEADER) && !headers.contains_key(CLOUD_TRACE_HEADER) {
        return None;
    }
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if context.span().span_context().is_valid() {
        return Some((context, ParentSource::TraceParent));
    }
    let value = headers.get(CLOUD_TRACE_HEADER)?.to_str().ok()?;
    let span_context = parse_cloud_trace_context(value)?;
    Some((
        Context::new().with_remote_span_context(span_context),
        ParentSource::CloudTraceContext,
    ))
}

/// Parses `TRACE_ID/SPAN_ID;o=OPTIONS`: 32 hex digits, a decimal span id
/// that is not zero, and optional options where bit 0 means sampled.
pub(crate) fn parse_cloud_trace_context(value: &str) -> Option<SpanContext> {
    let (trace_id, rest) = value.trim().split_once('/')?;
    let (span_id, options) = match rest.split_once(';') {
        Some((span_id, options)) => (span_id, Some(options)),
        None => (rest, None),
    };
    if trace_id.len() != 32 || !trace_id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id: u64 = span_id.parse().ok()?;
    let sampled = match options {
        None => false,
        Some(options) => {
            let flags: u8 = options.strip_prefix("o=")?.parse().ok()?;
            flags & 1 == 1
        }
    };
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let span_context = SpanContext::new(
        trace_id,
        SpanId::from_bytes(span_id.to_be_bytes()),
        flags,
        true,
        TraceState::default(),
    );
    span_context.is_valid().then_some(span_context)
}

/// Lets the OpenTelemetry propagator read request headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests;

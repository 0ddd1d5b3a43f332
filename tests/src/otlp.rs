//! A real OTLP receiver for the trace tests: it listens on two sockets,
//! OTLP/HTTP (protobuf, `POST /v1/traces`) and OTLP/gRPC, decodes each
//! `ExportTraceServiceRequest` and keeps the spans for the test to look at.
//! Over HTTP, `POST /refuse` answers 401 naming the query it was sent, as a
//! collector that quotes a token it does not know.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::within;

/// One span as it arrived, with ids as lowercase hex.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub attributes: HashMap<String, String>,
    /// The keys of the attributes sent as numbers rather than text.
    pub numeric: HashSet<String>,
    /// Each event's attributes, with its message under `message`.
    pub events: Vec<HashMap<String, String>>,
    /// The resource attributes of the batch it came in.
    pub resource: HashMap<String, String>,
    /// Which socket it came through: `http` or `grpc`.
    pub transport: &'static str,
}

impl ReceivedSpan {
    /// An attribute's value, failing the test when it is missing.
    pub fn attribute(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .unwrap_or_else(|| panic!("span {:?} has no attribute {key:?}: {self:#?}", self.name))
    }

    /// A numeric attribute's value, failing the test when it is missing or
    /// was sent as text.
    pub fn number(&self, key: &str) -> f64 {
        assert!(
            self.numeric.contains(key),
            "span {:?}: attribute {key:?} is not a number: {self:#?}",
            self.name
        );
        self.attribute(key).parse().unwrap()
    }
}

#[derive(Debug, Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    arrived: Notify,
}

impl Received {
    fn take(&self, request: ExportTraceServiceRequest, transport: &'static str) {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.resource_spans {
            let resource = resource_spans
                .resource
                .map(|resource| attributes(&resource.attributes))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    spans.push(ReceivedSpan {
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes: attributes(&span.attributes),
                        numeric: span
                            .attributes
                            .iter()
                            .filter(|pair| {
                                matches!(
                                    pair.value.as_ref().and_then(|value| value.value.as_ref()),
                                    Some(
                                        any_value::Value::IntValue(_)
                                            | any_value::Value::DoubleValue(_)
                                    )
                                )
                            })
                            .map(|pair| pair.key.clone())
                            .collect(),
                        events: span
                            .events
                            .iter()
                            .map(|event| {
                                let mut fields = attributes(&event.attributes);
                                fields
                                    .entry("message".to_owned())
                                    .or_insert_with(|| event.name.clone());
                                fields
                            })
                            .collect(),
                        resource: resource.clone(),
                        transport,
                    });
                }
            }
        }
        self.arrived.notify_waiters();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|pair| (pair.key.clone(), text(pair.value.as_ref())))
        .collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::BoolValue(value)) => value.to_string(),
        Some(any_value::Value::IntValue(value)) => value.to_string(),
        Some(any_value::Value::DoubleValue(value)) => value.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The receiver; it stops when dropped with the test's runtime.
#[derive(Debug)]
pub struct OtlpReceiver {
    http: SocketAddr,
    grpc: SocketAddr,
    received: Arc<Received>,
}

impl OtlpReceiver {
    /// Listens on two free loopback ports.
    pub async fn start() -> Self {
        let received = Arc::new(Received::default());
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let grpc = grpc_listener.local_addr().unwrap();

        let router = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_export))
            .route("/refuse", axum::routing::post(http_refuse))
            .with_state(Arc::clone(&received));
        tokio::spawn(async move { axum::serve(http_listener, router).await });

        let service = TraceServiceServer::new(GrpcReceiver(Arc::clone(&received)));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                    grpc_listener,
                )),
        );
        OtlpReceiver {
            http,
            grpc,
            received,
        }
    }

    /// The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` over HTTP.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The URL for `OTEL_EXPORTER_OTLP_ENDPOINT` over gRPC.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().unwrap().clone()
    }

    /// Waits until a span matching `matches` has arrived, and returns it.
    pub async fn until(&self, what: &str, matches: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        within(what, async {
            loop {
                let arrived = self.received.arrived.notified();
                tokio::pin!(arrived);
                // Registered before looking, so no batch slips between.
                arrived.as_mut().enable();
                if let Some(span) = self.spans().into_iter().find(|span| matches(span)) {
                    return span;
                }
                arrived.await;
            }
        })
        .await
    }
}

async fn http_export(State(received): State<Arc<Received>>, body: Bytes) -> impl IntoResponse {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            received.take(request, "http");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("not an ExportTraceServiceRequest: {error}").into_bytes(),
        ),
    }
}

async fn http_refuse(RawQuery(query): RawQuery) -> impl IntoResponse {
    (
        StatusCode::UNAUTHORIZED,
        format!("unknown credentials: {}", query.unwrap_or_default()),
    )
}

struct GrpcReceiver(Arc<Received>);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.take(request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

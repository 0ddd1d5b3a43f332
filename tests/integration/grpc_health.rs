//! The gRPC health checking protocol (`grpc.health.v1.Health`) on the real
//! program's admin listener, with tonic's generated client over a real
//! HTTP/2 connection beside the listener's HTTP/1.1.

use std::collections::HashMap;

use tonic::Code;
use tonic::codec::Streaming;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use warmgate_tests::{Gateway, Plan, http_client, within};

const CONTROL_TOKEN: &str = "6f1d2c3b4a5968778695a4b3c2d1e0f9";
const READ_TOKEN: &str = "9e8d7c6b5a4938271605f4e3d2c1b0a9";

/// A channel to the admin listener, speaking HTTP/2 with prior knowledge.
async fn admin_channel(gateway: &Gateway) -> Channel {
    let endpoint = Channel::from_shared(gateway.admin_url("")).unwrap();
    within(
        "a gRPC connection to the admin listener",
        endpoint.connect(),
    )
    .await
    .unwrap()
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> Result<ServingStatus, Code> {
    match within("a Check answer", client.check(request(service))).await {
        Ok(response) => Ok(ServingStatus::try_from(response.into_inner().status).unwrap()),
        Err(status) => Err(status.code()),
    }
}

async fn watch(
    client: &mut HealthClient<Channel>,
    service: &str,
) -> Streaming<HealthCheckResponse> {
    within("a Watch stream", client.watch(request(service)))
        .await
        .unwrap()
        .into_inner()
}

/// The next message of a Watch, `None` once the stream has ended well.
async fn next(stream: &mut Streaming<HealthCheckResponse>) -> Option<ServingStatus> {
    within("a Watch message", stream.message())
        .await
        .unwrap()
        .map(|response| ServingStatus::try_from(response.status).unwrap())
}

/// `grpc.health.v1.HealthListRequest` and `HealthListResponse`, which
/// `tonic-health` does not generate, as a client would declare them.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthListRequest {}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthListResponse {
    #[prost(map = "string, message", tag = "1")]
    statuses: HashMap<String, HealthCheckResponse>,
}

async fn list(channel: Channel) -> HashMap<String, ServingStatus> {
    let mut grpc = tonic::client::Grpc::new(channel);
    within("the channel to be ready", grpc.ready())
        .await
        .unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/List");
    let response: tonic::Response<HealthListResponse> = within(
        "a List answer",
        grpc.unary(
            tonic::Request::new(HealthListRequest {}),
            path,
            tonic_prost::ProstCodec::default(),
        ),
    )
    .await
    .unwrap();
    response
        .into_inner()
        .statuses
        .into_iter()
        .map(|(service, response)| (service, ServingStatus::try_from(response.status).unwrap()))
        .collect()
}

#[tokio::test]
async fn grpc_health_follows_the_gate_from_start_through_a_flip_to_the_drain() {
    let mut gateway = Gateway::builder().config(Plan::app_signal()).spawn().await;
    let channel = admin_channel(&gateway).await;
    let mut client = HealthClient::new(channel.clone());

    // Nothing has reported yet: UNKNOWN, not SERVING.
    assert_eq!(check(&mut client, "").await, Ok(ServingStatus::Unknown));
    assert_eq!(check(&mut client, "app").await, Ok(ServingStatus::Unknown));
    assert_eq!(check(&mut client, "nope").await, Err(Code::NotFound));
    let mut gate = watch(&mut client, "").await;
    assert_eq!(next(&mut gate).await, Some(ServingStatus::Unknown));
    let mut app = watch(&mut client, "app").await;
    assert_eq!(next(&mut app).await, Some(ServingStatus::Unknown));
    let mut unknown = watch(&mut client, "nope").await;
    assert_eq!(
        next(&mut unknown).await,
        Some(ServingStatus::ServiceUnknown)
    );
    assert_eq!(
        list(channel.clone()).await,
        HashMap::from([
            (String::new(), ServingStatus::Unknown),
            ("app".to_owned(), ServingStatus::Unknown),
        ])
    );

    gateway.set_signal("app", true).await;
    assert_eq!(next(&mut gate).await, Some(ServingStatus::Serving));
    assert_eq!(next(&mut app).await, Some(ServingStatus::Serving));
    assert_eq!(check(&mut client, "").await, Ok(ServingStatus::Serving));
    gateway.set_signal("app", false).await;
    assert_eq!(next(&mut gate).await, Some(ServingStatus::NotServing));
    assert_eq!(next(&mut app).await, Some(ServingStatus::NotServing));
    gateway.set_signal("app", true).await;
    assert_eq!(next(&mut gate).await, Some(ServingStatus::Serving));
    assert_eq!(next(&mut app).await, Some(ServingStatus::Serving));
    assert_eq!(
        list(channel.clone()).await,
        HashMap::from([
            (String::new(), ServingStatus::Serving),
            ("app".to_owned(), ServingStatus::Serving),
        ])
    );

    // At drain every Watch, the unknown name's too, gets NOT_SERVING and
    // ends; the process still exits on time.
    gateway.terminate();
    for stream in [&mut gate, &mut app, &mut unknown] {
        assert_eq!(next(stream).await, Some(ServingStatus::NotServing));
        assert_eq!(next(stream).await, None);
    }
    assert!(gateway.exit_status().await.success());
    let log = gateway.log();
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test]
async fn grpc_health_needs_an_admin_token_and_a_read_token_is_enough() {
    let gateway = Gateway::with_admin_tokens(CONTROL_TOKEN, READ_TOKEN).await;
    let channel = admin_channel(&gateway).await;

    let mut anonymous = HealthClient::new(channel.clone());
    let refused = within("a refused Check", anonymous.check(request("")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("admin token"), "{refused:?}");
    let refused = within("a refused Watch", anonymous.watch(request("")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    for token in [READ_TOKEN, CONTROL_TOKEN] {
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        let mut client = HealthClient::with_interceptor(
            channel.clone(),
            move |mut request: tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
                Ok(request)
            },
        );
        let response = within("a Check answer", client.check(request("app")))
            .await
            .unwrap();
        assert_eq!(response.into_inner().status, ServingStatus::Unknown as i32);
    }

    // HTTP/1.1 on the same port, as before.
    let response = http_client()
        .get(gateway.admin_url("/readiness"))
        .bearer_auth(READ_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status().as_u16(), 200);
    let log = gateway.log();
    assert!(!log.contains(READ_TOKEN) && !log.contains(CONTROL_TOKEN));
}

#[tokio::test]
async fn the_grpc_health_listener_answers_without_a_token_and_serves_nothing_else() {
    let port = warmgate_tests::free_port();
    let mut gateway = Gateway::builder()
        .config(
            Plan::app_signal()
                .set("grpc_health_listen", format!("127.0.0.1:{port}"))
                .set("admin_token_env", "WARMGATE_TEST_ADMIN_TOKEN"),
        )
        .env("WARMGATE_TEST_ADMIN_TOKEN", CONTROL_TOKEN)
        .spawn()
        .await;
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    let channel = within(
        "a gRPC connection to the gRPC health listener",
        endpoint.connect(),
    )
    .await
    .unwrap();
    // As a Kubernetes gRPC probe asks: no token, service "".
    let mut client = HealthClient::new(channel.clone());
    assert_eq!(check(&mut client, "").await, Ok(ServingStatus::Unknown));
    let mut gate = watch(&mut client, "").await;
    assert_eq!(next(&mut gate).await, Some(ServingStatus::Unknown));

    // The admin listener still wants its token; the gRPC health listener
    // serves no admin route.
    let mut admin = HealthClient::new(admin_channel(&gateway).await);
    let refused = within("a refused Check", admin.check(request("")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let response = http_client()
        .get(format!("http://127.0.0.1:{port}/readiness"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);

    let set = http_client()
        .post(gateway.admin_url("/signals/app"))
        .bearer_auth(CONTROL_TOKEN)
        .body("{\"ready\": true}")
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 204);
    assert_eq!(next(&mut gate).await, Some(ServingStatus::Serving));
    gateway.terminate();
    assert_eq!(next(&mut gate).await, Some(ServingStatus::NotServing));
    assert_eq!(next(&mut gate).await, None);
    assert!(gateway.exit_status().await.success());
}

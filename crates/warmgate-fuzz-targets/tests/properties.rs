//! Property tests for the parsers the fuzzer covers, cheap enough for every
//! test run: the fuzz targets' promises on generated inputs shaped like the
//! real ones, which reach deep paths at once where a short fuzz run might
//! not.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header};
use proptest::prelude::*;
use warmgate_chat::protocol::{ClientMessage, MAX_ROOM_CHARS};
use warmgate_fuzz_targets::request::FuzzRequest;
use warmgate_fuzz_targets::{
    client_message, config_file, handshake, jwt_header, token_from_request,
};
use warmgate_gate::check_handshake;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

// === client messages ===

fn room() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 1..=MAX_ROOM_CHARS)
        .prop_map(|characters| characters.into_iter().collect())
}

fn valid_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (
            room(),
            any::<String>(),
            proptest::option::of(any::<String>())
        )
            .prop_map(|(room, text, client_msg_id)| ClientMessage::Chat {
                room,
                text,
                client_msg_id,
            }),
        room().prop_map(|room| ClientMessage::Join { room }),
    ]
}

/// JSON values shaped like client messages: a known or unknown `type`,
/// fields of any JSON type, sometimes one too many.
fn message_like_json() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
    ];
    let key = prop_oneof![
        Just("type".to_owned()),
        Just("room".to_owned()),
        Just("text".to_owned()),
        Just("client_msg_id".to_owned()),
        any::<String>(),
    ];
    let kind = prop_oneof![
        Just("chat".to_owned()),
        Just("join".to_owned()),
        any::<String>()
    ];
    (
        kind,
        proptest::collection::btree_map(key, value, 0..5),
        any::<bool>(),
    )
        .prop_map(|(kind, fields, typed)| {
            let mut object: serde_json::Map<String, serde_json::Value> =
                fields.into_iter().collect();
            if typed {
                object.insert("type".to_owned(), kind.into());
            }
            serde_json::Value::Object(object).to_string()
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn client_message_parse_never_panics_on_any_text(text in any::<String>()) {
        client_message::check(&text);
    }

    #[test]
    fn client_message_body_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        client_message::fuzz(&bytes);
    }

    #[test]
    fn client_message_parse_never_panics_on_message_like_json(text in message_like_json()) {
        client_message::check(&text);
    }

    #[test]
    fn valid_client_messages_round_trip(message in valid_message()) {
        let text = client_message::to_json(&message);
        prop_assert_eq!(ClientMessage::parse(&text), Ok(message));
    }

    #[test]
    fn a_room_name_past_the_limit_is_refused(
        room in proptest::collection::vec(any::<char>(), MAX_ROOM_CHARS + 1..MAX_ROOM_CHARS * 2)
    ) {
        let room: String = room.into_iter().collect();
        let text = serde_json::json!({"type": "join", "room": room}).to_string();
        prop_assert!(ClientMessage::parse(&text).is_err());
    }
}

// === the upgrade handshake ===

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::GET),
        1 => Just(Method::POST),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
        1 => "[A-Z]{1,10}".prop_filter_map("an HTTP method", |name| Method::from_bytes(name.as_bytes()).ok()),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![4 => Just(Version::HTTP_11), 1 => Just(Version::HTTP_10)]
}

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        3 => prop_oneof![
            Just(header::UPGRADE),
            Just(header::CONNECTION),
            Just(header::SEC_WEBSOCKET_VERSION),
            Just(header::SEC_WEBSOCKET_KEY),
            Just(header::SEC_WEBSOCKET_PROTOCOL),
            Just(header::ORIGIN),
            Just(header::AUTHORIZATION),
            Just(header::CONTENT_LENGTH),
            Just(header::TRANSFER_ENCODING),
        ],
        1 => "[a-zA-Z0-9-]{1,20}".prop_filter_map("a header name", |name| HeaderName::from_bytes(name.as_bytes()).ok()),
    ]
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        2 => prop_oneof![
            Just("websocket"),
            Just("Upgrade"),
            Just("keep-alive, Upgrade"),
            Just("13"),
            Just("8"),
            Just("0"),
            Just("chunked"),
            Just("dGhlIHNhbXBsZSBub25jZQ=="),
            Just("warmgate.v1"),
            Just("https://chat.example.com"),
            Just("https://chat.example.com/"),
        ]
        .prop_map(HeaderValue::from_static),
        1 => proptest::collection::vec(any::<u8>(), 0..40)
            .prop_filter_map("a header value", |bytes| HeaderValue::from_bytes(&bytes).ok()),
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    proptest::collection::vec((header_name(), header_value()), 0..10).prop_map(|pairs| {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name, value);
        }
        headers
    })
}

fn allowed_origins() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(
        prop_oneof![
            Just("https://chat.example.com".to_owned()),
            Just("http://localhost:8080".to_owned()),
            any::<String>(),
        ],
        0..3,
    )
}

/// A valid `Sec-WebSocket-Key`: 22 base64 characters and `==`.
fn websocket_key() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{22}".prop_map(|key| format!("{key}=="))
}

/// A token in any letter case.
fn any_case(token: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), token.len()).prop_map(move |upper| {
        token
            .chars()
            .zip(upper)
            .map(|(character, upper)| {
                if upper {
                    character.to_ascii_uppercase()
                } else {
                    character
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn check_handshake_never_panics_on_any_header_set(
        method in method(),
        version in version(),
        headers in headers(),
        origins in allowed_origins(),
    ) {
        handshake::check(&method, version, &headers, &origins);
    }

    #[test]
    fn handshake_body_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        handshake::fuzz(&bytes);
    }

    #[test]
    fn a_request_reads_back_from_its_bytes(
        method in method(),
        version in version(),
        headers in headers(),
        origins in proptest::collection::vec("[a-z:/.0-9]{0,30}", 0..3),
    ) {
        let request = FuzzRequest { method, version, headers, allowed_origins: origins, ..FuzzRequest::default() };
        let Some(read_back) = FuzzRequest::from_bytes(&request.to_bytes()) else {
            return Err(TestCaseError::fail("the request's bytes do not read back"));
        };
        prop_assert_eq!(read_back.method, request.method);
        prop_assert_eq!(read_back.version, request.version);
        prop_assert_eq!(read_back.allowed_origins, request.allowed_origins);
        // Values are trimmed when read, as an HTTP parser trims them.
        let trimmed = |headers: &HeaderMap| -> Vec<(String, Vec<u8>)> {
            headers.iter().map(|(name, value)| (name.to_string(), value.as_bytes().trim_ascii().to_vec())).collect()
        };
        prop_assert_eq!(trimmed(&read_back.headers), trimmed(&request.headers));
    }

    #[test]
    fn a_well_formed_upgrade_is_accepted(
        key in websocket_key(),
        upgrade in any_case("websocket"),
        connection in any_case("upgrade"),
        keep_alive_first in any::<bool>(),
        subprotocol in proptest::option::of(Just("warmgate.v1")),
    ) {
        let connection = if keep_alive_first { format!("keep-alive, {connection}") } else { connection };
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (header::UPGRADE, upgrade),
            (header::CONNECTION, connection),
            (header::SEC_WEBSOCKET_VERSION, "13".to_owned()),
            (header::SEC_WEBSOCKET_KEY, key),
        ] {
            let Ok(value) = HeaderValue::from_str(&value) else {
                return Err(TestCaseError::fail("a generated value is not a header value"));
            };
            headers.insert(name, value);
        }
        if let Some(subprotocol) = subprotocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(subprotocol));
        }
        prop_assert!(check_handshake(&Method::GET, Version::HTTP_11, &headers, &[]).is_ok());
        // The same request in HTTP/1.0, or with its key or version sent
        // twice, or with a body, is refused.
        prop_assert!(check_handshake(&Method::GET, Version::HTTP_10, &headers, &[]).is_err());
        for (name, value) in [
            (header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ=="),
            (header::SEC_WEBSOCKET_VERSION, "13"),
            (header::CONTENT_LENGTH, "1"),
            (header::TRANSFER_ENCODING, "chunked"),
        ] {
            let mut twice = headers.clone();
            twice.append(name, HeaderValue::from_static(value));
            prop_assert!(check_handshake(&Method::GET, Version::HTTP_11, &twice, &[]).is_err());
        }
    }
}

// === bearer tokens ===

/// A base64url string, as JWT parts are.
fn base64url(length: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec(),
        ),
        length,
    )
    .prop_map(|bytes| bytes.into_iter().map(char::from).collect())
}

/// The base64url of a JSON header: of the right shape or not.
fn encoded_header() -> impl Strategy<Value = String> {
    let alg = prop_oneof![
        Just(serde_json::json!("HS256")),
        Just(serde_json::json!("RS256")),
        Just(serde_json::json!("ES256")),
        Just(serde_json::json!("none")),
        any::<String>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
    ];
    let kid = proptest::option::of(any::<String>());
    (alg, kid, any::<bool>()).prop_map(|(alg, kid, as_object)| {
        let json = if as_object {
            serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid})
        } else {
            serde_json::json!([alg, kid])
        };
        base64url_encode(json.to_string().as_bytes())
    })
}

/// Base64url without padding, written out here to need no crate for it.
fn base64url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let bits = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for index in 0..=chunk.len() {
            let sextet = (bits >> (18 - 6 * index)) & 0x3f;
            text.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    text
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (encoded_header(), base64url(0..80), base64url(0..90))
            .prop_map(|(header, claims, signature)| format!("{header}.{claims}.{signature}")),
        1 => proptest::collection::vec(base64url(0..20), 0..5).prop_map(|parts| parts.join(".")),
        1 => any::<String>(),
    ]
}

/// A request head with the token in one or more of its places.
fn request_with_tokens() -> impl Strategy<Value = FuzzRequest> {
    let authorization = proptest::option::of((
        prop_oneof![Just("Bearer"), Just("bearer"), Just("Basic"), Just("")],
        token(),
    ));
    let subprotocols = proptest::collection::vec(
        prop_oneof![
            Just("warmgate.v1".to_owned()),
            token().prop_map(|token| format!("bearer.{token}")),
            token().prop_map(|token| format!("BEARER.{token}")),
        ],
        0..3,
    );
    let query = proptest::option::of(prop_oneof![
        token().prop_map(|token| format!("token={token}")),
        token().prop_map(|token| format!("room=lobby&token={token}&token=x")),
        any::<String>(),
    ]);
    (authorization, subprotocols, query, any::<bool>()).prop_map(
        |(authorization, subprotocols, query, allow_query_token)| {
            let mut headers = HeaderMap::new();
            if let Some((scheme, token)) = authorization
                && let Ok(value) = HeaderValue::from_str(&format!("{scheme} {token}"))
            {
                headers.insert(header::AUTHORIZATION, value);
            }
            if !subprotocols.is_empty()
                && let Ok(value) = HeaderValue::from_str(&subprotocols.join(", "))
            {
                headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
            }
            FuzzRequest {
                method: Method::GET,
                headers,
                query,
                allow_query_token,
                ..FuzzRequest::default()
            }
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_token_header_never_panics_and_never_quotes_the_token(token in token()) {
        jwt_header::check(&token);
    }

    #[test]
    fn finding_a_token_never_panics_and_never_quotes_it(request in request_with_tokens()) {
        token_from_request::check(&request);
    }

    #[test]
    fn finding_a_token_never_panics_on_any_header_set(
        headers in headers(),
        query in proptest::option::of(any::<String>()),
        allow_query_token in any::<bool>(),
    ) {
        let request = FuzzRequest { headers, query, allow_query_token, ..FuzzRequest::default() };
        token_from_request::check(&request);
    }
}

#[test]
fn base64url_encoding_matches_a_known_header() {
    assert_eq!(
        base64url_encode(br#"{"alg":"HS256"}"#),
        "eyJhbGciOiJIUzI1NiJ9"
    );
    assert_eq!(base64url_encode(b"ab"), "YWI");
    assert_eq!(base64url_encode(b"\xfb\xff"), "-_8");
}

// === the config file ===

/// A value for a config key: of the right kind or not.
fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"5s\"".to_owned()),
        Just("\"250ms\"".to_owned()),
        Just("\"0s\"".to_owned()),
        Just("\"1m 30s\"".to_owned()),
        Just("\"127.0.0.1:8080\"".to_owned()),
        Just("\"[::1]:0\"".to_owned()),
        Just("\"signal\"".to_owned()),
        Just("\"tcp\"".to_owned()),
        Just("\"http\"".to_owned()),
        Just("\"jwt\"".to_owned()),
        Just("\"none\"".to_owned()),
        Just("[]".to_owned()),
        Just("[\"https://chat.example.com\"]".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|number| number.to_string()),
        any::<f64>().prop_map(|number| format!("{number:?}")),
        // JSON's string escapes are all TOML escapes too.
        any::<String>().prop_map(|text| serde_json::Value::from(text).to_string()),
    ]
}

fn config_key() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "listen",
        "admin_listen",
        "admin_token",
        "admin_token_env",
        "admin_read_token",
        "chat_page",
        "chat",
        "readiness_detail",
        "trusted_proxies",
        "handshakes_per_second_per_address",
        "max_event_streams_per_address",
        "startup_deadline",
        "retry_cap",
        "hold_timeout",
        "warming_interval",
        "retry_after",
        "shutdown_budget",
        "drain_grace",
        "handshake_timeout",
        "ping_interval",
        "write_timeout",
        "max_connections",
        "max_held",
        "max_message_bytes",
        "allowed_origins",
        "messages_per_second",
        "message_burst",
        "name",
        "kind",
        "required",
        "timeout",
        "interval",
        "failure_threshold",
        "success_threshold",
        "addr",
        "url",
        "url_env",
        "expect_status",
        "mode",
        "log_format",
        "unknown_key",
    ])
}

fn config_section() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        "",
        "[gate]",
        "[auth]",
        "[telemetry]",
        "[routes]",
        "[clients]",
        "[[phase]]",
        "[[phase.check]]",
    ])
}

/// Config text built from real sections and keys with values of any kind.
fn config_like_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            config_section(),
            proptest::collection::vec((config_key(), config_value()), 0..6),
        ),
        0..6,
    )
    .prop_map(|sections| {
        let mut text = String::new();
        for (section, lines) in sections {
            text.push_str(section);
            text.push('\n');
            for (key, value) in lines {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        text
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_never_panics_on_config_like_text(text in config_like_text()) {
        config_file::check(&text);
    }

    #[test]
    fn config_never_panics_on_any_text(text in any::<String>()) {
        config_file::check(&text);
    }
}

/// Every prefix of each real config file: a file cut short anywhere, as an
/// editor or a failed copy leaves it, gets an error, never a panic.
#[test]
fn config_never_panics_on_a_real_file_cut_short() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files = [
        root.join("examples/chat.toml"),
        root.join("examples/minimal.toml"),
        root.join("crates/warmgate-config/src/default.toml"),
    ];
    for file in files {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        for (end, _) in text.char_indices().step_by(3) {
            config_file::check(&text[..end]);
        }
        config_file::check(&text);
    }
}

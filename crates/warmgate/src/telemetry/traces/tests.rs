//! Unit tests of `traces`.

use std::collections::HashMap;

use super::*;

fn resolve(config: &TelemetryConfig, variables: &[(&str, &str)]) -> Result<TraceSettings, String> {
    let variables: HashMap<String, String> = variables
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    TraceSettings::resolve(config, &|name| {
        variables.get(name).filter(|v| !v.is_empty()).cloned()
    })
}

/// The export's URL (in full) and protocol.
fn export(settings: &TraceSettings) -> Option<(&str, OtlpProtocol)> {
    settings
        .export
        .as_ref()
        .map(|export| (export.endpoint.expose(), export.protocol))
}

fn file(text: &str) -> TelemetryConfig {
    warmgate_config::Config::from_toml_str(text, "test.toml")
        .unwrap()
        .telemetry
}

#[test]
fn nothing_configured_means_no_export() {
    let settings = resolve(&TelemetryConfig::default(), &[]).unwrap();
    assert_eq!(settings.export, None);
    assert_eq!(settings.sampler, TraceSampler::ParentBasedAlwaysOn);
    assert_eq!(settings.service_name, "warmgate");
    // An empty variable is unset.
    let settings = resolve(
        &TelemetryConfig::default(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")],
    )
    .unwrap();
    assert_eq!(settings.export, None);
}

#[test]
fn the_file_sets_a_base_url_and_http_appends_the_traces_path() {
    let config = file("[telemetry]\notlp_endpoint = \"http://collector:4318/\"\n");
    let settings = resolve(&config, &[]).unwrap();
    assert_eq!(
        export(&settings),
        Some((
            "http://collector:4318/v1/traces",
            OtlpProtocol::HttpProtobuf
        ))
    );
    let config =
        file("[telemetry]\notlp_endpoint = \"http://collector:4317\"\notlp_protocol = \"grpc\"\n");
    assert_eq!(
        export(&resolve(&config, &[]).unwrap()),
        Some(("http://collector:4317", OtlpProtocol::Grpc))
    );
}

#[test]
fn the_environment_beats_the_file() {
    let config = file(
        "[telemetry]\notlp_endpoint = \"http://file:4318\"\nsampler = \"always_off\"\nservice_name = \"from-file\"\n",
    );
    let settings = resolve(
        &config,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ],
    )
    .unwrap();
    assert_eq!(
        export(&settings),
        Some(("http://env:4317", OtlpProtocol::Grpc))
    );
    assert_eq!(settings.sampler, TraceSampler::TraceIdRatio(0.5));
    assert_eq!(settings.service_name, "from-file");

    // The signal's own variables beat the generic ones, and its
    // endpoint is used as is.
    let settings = resolve(
        &config,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:9999/custom",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ],
    )
    .unwrap();
    assert_eq!(
        export(&settings),
        Some(("http://traces:9999/custom", OtlpProtocol::HttpProtobuf))
    );
}

#[test]
fn the_endpoint_shows_neither_password_nor_query_and_keeps_the_query_on_the_path() {
    let settings = resolve(
        &TelemetryConfig::default(),
        &[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://otlp:pa55-word@collector:4318/?token=t0ken-value",
        )],
    )
    .unwrap();
    assert_eq!(
        export(&settings),
        Some((
            "https://otlp:pa55-word@collector:4318/v1/traces?token=t0ken-value",
            OtlpProtocol::HttpProtobuf
        ))
    );
    let shown = format!("{settings:?} {settings:#?}");
    assert!(
        !shown.contains("pa55-word") && !shown.contains("t0ken-value"),
        "{shown}"
    );
    assert!(
        shown.contains("https://otlp:***@collector:4318/v1/traces?…"),
        "{shown}"
    );
    let error = resolve(
        &TelemetryConfig::default(),
        &[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "ftp://otlp:pa55-word@collector/",
        )],
    )
    .unwrap_err();
    assert!(!error.contains("pa55-word"), "{error}");
}

#[test]
fn the_export_timeout_comes_from_the_signal_variable_then_the_generic_one() {
    let config = file("[telemetry]\notlp_endpoint = \"http://collector:4318\"\n");
    let timeout = |variables: &[(&str, &str)]| {
        resolve(&config, variables).map(|settings| settings.export.map(|export| export.timeout))
    };
    assert_eq!(timeout(&[]), Ok(Some(Duration::from_secs(10))));
    assert_eq!(
        timeout(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]),
        Ok(Some(Duration::from_millis(2500)))
    );
    assert_eq!(
        timeout(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "750"),
        ]),
        Ok(Some(Duration::from_millis(750)))
    );
    assert_eq!(
        timeout(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")]),
        Err("OTEL_EXPORTER_OTLP_TIMEOUT: invalid timeout \"soon\", expected a number of milliseconds such as 10000".to_owned())
    );
}

#[test]
fn a_password_in_the_endpoint_becomes_a_basic_authorization() {
    assert_eq!(
        basic_authorization("otlp", &SecretText::new("pa55-word")),
        "Basic b3RscDpwYTU1LXdvcmQ="
    );
}

#[test]
fn bad_variables_are_errors_that_name_the_variable() {
    let config = TelemetryConfig::default();
    let cases = [
        (
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            "OTEL_EXPORTER_OTLP_PROTOCOL: OTLP protocol \"http/json\" is not supported, expected \"grpc\" or \"http/protobuf\"",
        ),
        (
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            "OTEL_EXPORTER_OTLP_ENDPOINT: invalid OTLP endpoint (URL scheme `collector` is not supported here, expected http:// or https://), expected an http:// or https:// URL such as \"http://localhost:4318\"",
        ),
        (
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            "OTEL_TRACES_SAMPLER: unknown sampler \"sometimes\", expected \"always_on\", \"always_off\", \"traceidratio\", \"parentbased_always_on\", \"parentbased_always_off\" or \"parentbased_traceidratio\"",
        ),
    ];
    for ((name, value), expected) in cases {
        assert_eq!(resolve(&config, &[(name, value)]), Err(expected.to_owned()));
    }
    assert_eq!(
        resolve(
            &config,
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "lots")
            ]
        ),
        Err(
            "OTEL_TRACES_SAMPLER_ARG: invalid sampler argument \"lots\", expected a fraction from 0 to 1"
                .to_owned()
        )
    );
}

fn attribute(resource: &Resource, key: &'static str) -> Option<String> {
    resource
        .get(&opentelemetry::Key::from_static_str(key))
        .map(|value| value.to_string())
}

#[test]
fn the_resource_names_the_service_its_version_instance_and_cloud_run_revision() {
    let settings = resolve(&TelemetryConfig::default(), &[]).unwrap();
    let variables: HashMap<&str, &str> = [
        ("K_SERVICE", "chat"),
        ("K_REVISION", "chat-00042-abc"),
        ("K_CONFIGURATION", "chat"),
    ]
    .into();
    let env = |name: &str| variables.get(name).map(|value| (*value).to_owned());
    let resource = resource(&settings, &env);
    assert_eq!(
        attribute(&resource, "service.name").as_deref(),
        Some("warmgate")
    );
    assert_eq!(
        attribute(&resource, "service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let instance = attribute(&resource, "service.instance.id").unwrap();
    assert_eq!(instance.len(), 36, "{instance}");
    assert_eq!(&instance[14..15], "4", "a version 4 UUID: {instance}");
    assert_eq!(attribute(&resource, "faas.name").as_deref(), Some("chat"));
    assert_eq!(
        attribute(&resource, "faas.version").as_deref(),
        Some("chat-00042-abc")
    );
    assert_eq!(
        attribute(&resource, "gcp.cloud_run.configuration").as_deref(),
        Some("chat")
    );
    assert_eq!(
        attribute(&resource, "cloud.platform").as_deref(),
        Some("gcp_cloud_run")
    );

    // Off Cloud Run, none of the Cloud Run attributes.
    let resource = super::resource(&settings, &|_| None);
    assert_eq!(attribute(&resource, "faas.name"), None);
}

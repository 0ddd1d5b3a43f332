//! The serving line is read as written, every way it can be wrong is an
//! error that names the line, and writing then reading gives back the same.

use std::net::SocketAddr;

use super::ServingLine;
use crate::DevServerError;

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a test address")
}

/// The reason of a refused line.
fn refused(line: &str) -> String {
    match ServingLine::parse(line) {
        Err(DevServerError::NotAServingLine {
            line: named,
            reason,
        }) => {
            assert_eq!(named, line, "the error names the line as given");
            reason
        }
        other => panic!("{line:?} was not refused: {other:?}"),
    }
}

#[test]
fn warmgates_line_names_both_listeners() {
    let serving = ServingLine::parse(
        "warmgate: serving http://127.0.0.1:8080 (admin http://127.0.0.1:9090)\n",
    )
    .expect("warmgate's line");
    assert_eq!(
        serving,
        ServingLine {
            name: "warmgate".to_owned(),
            public: addr("127.0.0.1:8080"),
            admin: Some(addr("127.0.0.1:9090")),
        }
    );
}

#[test]
fn a_line_without_an_admin_listener_names_one() {
    let serving = ServingLine::parse("warmgate-reference: serving http://[::1]:41234\r\n")
        .expect("a benchmark server's line");
    assert_eq!(serving.name, "warmgate-reference");
    assert_eq!(serving.public, addr("[::1]:41234"));
    assert_eq!(serving.admin, None);
}

#[test]
fn writing_then_reading_gives_the_same_line() {
    for serving in [
        ServingLine {
            name: "warmgate".to_owned(),
            public: addr("0.0.0.0:8080"),
            admin: Some(addr("[::1]:9090")),
        },
        ServingLine {
            name: "floor".to_owned(),
            public: addr("127.0.0.1:1"),
            admin: None,
        },
    ] {
        let line = serving.to_string();
        assert_eq!(ServingLine::parse(&line).expect(&line), serving);
    }
    assert_eq!(
        ServingLine {
            name: "warmgate".to_owned(),
            public: addr("127.0.0.1:8080"),
            admin: Some(addr("127.0.0.1:9090")),
        }
        .to_string(),
        "warmgate: serving http://127.0.0.1:8080 (admin http://127.0.0.1:9090)"
    );
}

#[test]
fn anything_else_is_refused_with_the_reason() {
    let cases = [
        ("", "has no"),
        ("listening on 127.0.0.1:8080", "has no"),
        ("warmgate: serving https://127.0.0.1:8080", "has no"),
        (": serving http://127.0.0.1:8080", "not a program's name"),
        (
            "two words: serving http://127.0.0.1:8080",
            "not a program's name",
        ),
        (
            "warmgate: serving http://localhost:8080",
            "`localhost:8080` is not an address",
        ),
        (
            "warmgate: serving http://127.0.0.1",
            "`127.0.0.1` is not an address",
        ),
        (
            "warmgate: serving http://127.0.0.1:8080 (admin http://127.0.0.1:9090",
            "not closed",
        ),
        (
            "warmgate: serving http://127.0.0.1:8080 (admin http://nowhere)",
            "`nowhere` is not an address",
        ),
        (
            "backend: serving http://127.0.0.1:8000 (WebSockets on ws://127.0.0.1:8000/ws)",
            "is not an address",
        ),
        (
            "  warmgate: serving http://127.0.0.1:8080",
            "not a program's name",
        ),
    ];
    for (line, reason) in cases {
        let said = refused(line);
        assert!(said.contains(reason), "{line:?}: {said}");
    }
}

#[test]
fn a_line_from_another_program_is_refused_when_one_is_expected() {
    let line = "reference: serving http://127.0.0.1:8080";
    assert_eq!(
        ServingLine::parse_from("reference", line)
            .expect("reference's line")
            .public,
        addr("127.0.0.1:8080")
    );
    match ServingLine::parse_from("floor", line) {
        Err(error @ DevServerError::NotAServingLine { .. }) => {
            let message = error.to_string();
            assert!(message.contains("reference's, not floor's"), "{message}");
            assert!(message.contains(line), "{message}");
        }
        other => panic!("{line:?} was taken for floor's: {other:?}"),
    }
}

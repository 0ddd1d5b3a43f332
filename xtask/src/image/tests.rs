//! The argument and `/proc` parsing of the image commands, and how a
//! message is judged.

use super::websocket::Frame;
use super::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

#[test]
fn options_default_to_the_dev_tag_on_the_local_base() {
    assert_eq!(
        parse_options("image", &[]).expect("no arguments are fine"),
        Options {
            tag: DEFAULT_TAG.to_owned(),
            base: None,
        }
    );
}

#[test]
fn options_take_a_tag_and_a_base() {
    assert_eq!(
        parse_options(
            "image-test",
            &args(&["--tag", "warmgate:1", "--base", "debian:bookworm-slim"])
        )
        .expect("both flags are known"),
        Options {
            tag: "warmgate:1".to_owned(),
            base: Some("debian:bookworm-slim".to_owned()),
        }
    );
}

#[test]
fn options_refuse_a_flag_without_its_value_or_an_unknown_one() {
    for bad in [
        &["--tag"][..],
        &["--tag", ""],
        &["--tag", "--base", "x"],
        &["--test"],
        &["warmgate:1"],
    ] {
        assert!(
            parse_options("image", &args(bad)).is_err(),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn uids_are_read_from_the_uid_line() {
    let status = "Name:\twarmgate\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t10001\t10001\t10001\t10001\nGid:\t10001\t10001\t10001\t10001\n";
    assert_eq!(uids(status), Some(vec![10001; 4]));
    assert_eq!(uids("Name:\twarmgate\n"), None);
    assert_eq!(uids("Uid:\tnobody\n"), None);
    assert_eq!(uids("Uid:\n"), None);
}

#[test]
fn sizes_round_up_to_whole_megabytes() {
    assert_eq!(megabytes(0), "0 MB");
    assert_eq!(megabytes(214_999_999), "215 MB");
    assert_eq!(megabytes(215_000_000), "215 MB");
    assert_eq!(megabytes(215_000_001), "216 MB");
}

#[test]
fn frame_types_come_from_json_text_frames_only() {
    let ready = Frame::Text(r#"{"type":"ready","seq":2}"#.to_owned());
    assert_eq!(frame_type(&ready).as_deref(), Some("ready"));
    assert_eq!(frame_type(&Frame::Text("hello".to_owned())), None);
    assert_eq!(frame_type(&Frame::Text(r#"{"type":1}"#.to_owned())), None);
    assert_eq!(frame_type(&Frame::Close(Some(1001))), None);
}

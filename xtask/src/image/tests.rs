//! The argument, `/proc` and frame parsing of the image commands.

use super::websocket::{Frame, close_frame, parse_frame};
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

#[test]
fn a_short_text_frame_is_parsed_and_its_length_counted() {
    let mut bytes = vec![0x81, 5];
    bytes.extend_from_slice(b"hello");
    bytes.extend_from_slice(&[0x88, 0]);
    let (frame, used) = parse_frame(&bytes)
        .expect("a valid frame")
        .expect("a whole frame");
    assert_eq!(frame, Frame::Text("hello".to_owned()));
    assert_eq!(used, 7);
    assert_eq!(
        parse_frame(&bytes[used..]).expect("a valid frame"),
        Some((Frame::Close(None), 2))
    );
}

#[test]
fn extended_lengths_are_read() {
    let text = "x".repeat(300);
    let mut medium = vec![0x81, 126];
    medium.extend_from_slice(&300_u16.to_be_bytes());
    medium.extend_from_slice(text.as_bytes());
    assert_eq!(
        parse_frame(&medium).expect("a valid frame"),
        Some((Frame::Text(text.clone()), 304))
    );
    let mut long = vec![0x81, 127];
    long.extend_from_slice(&300_u64.to_be_bytes());
    long.extend_from_slice(text.as_bytes());
    assert_eq!(
        parse_frame(&long).expect("a valid frame"),
        Some((Frame::Text(text), 310))
    );
}

#[test]
fn an_incomplete_frame_waits_for_more_bytes() {
    for partial in [
        &[][..],
        &[0x81],
        &[0x81, 5, b'h'],
        &[0x81, 126, 1],
        &[0x81, 127, 0, 0],
    ] {
        assert_eq!(
            parse_frame(partial).expect("valid so far"),
            None,
            "{partial:?}"
        );
    }
}

#[test]
fn close_codes_and_other_opcodes_are_told_apart() {
    assert_eq!(
        parse_frame(&[0x88, 2, 0x03, 0xe9]).expect("a valid frame"),
        Some((Frame::Close(Some(1001)), 4))
    );
    assert_eq!(
        parse_frame(&[0x89, 0]).expect("a valid frame"),
        Some((Frame::Other(0x9), 2))
    );
    assert!(
        parse_frame(&[0x81, 0x81, 0, 0, 0, 0, b'x']).is_err(),
        "masked"
    );
    assert!(parse_frame(&[0x81, 1, 0xff]).is_err(), "not UTF-8");
}

#[test]
fn the_closing_reply_is_masked_and_carries_the_code() {
    let frame = close_frame(Some(1001));
    assert_eq!(frame[..2], [0x88, 0x82]);
    let mask = &frame[2..6];
    let code: Vec<u8> = frame[6..]
        .iter()
        .zip(mask.iter().cycle())
        .map(|(byte, mask)| byte ^ mask)
        .collect();
    assert_eq!(code, 1001_u16.to_be_bytes());
    assert_eq!(close_frame(None)[..2], [0x88, 0x80]);
    assert_eq!(close_frame(None).len(), 6);
}

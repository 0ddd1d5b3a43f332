//! The `/proc` parsing of the image commands, and how a message is judged
//! (their options are parsed with the others, in the crate's tests).

use super::websocket::Frame;
use super::*;

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

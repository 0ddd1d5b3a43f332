//! Unit tests of `instructions`.

use super::*;

#[test]
fn callgrind_totals_are_read() {
    let dump = "version: 1\ncreator: callgrind-3.19.0\npid: 27649\nevents: Ir\n\nfn=(1) main\n0 12\n\ntotals: 3895978\n";
    assert_eq!(callgrind_total(dump), Some(3_895_978));
    assert_eq!(callgrind_total("events: Ir\n"), None);
}

//! Unit tests of `report`.

use super::*;

#[test]
fn a_section_is_replaced_and_the_rest_kept() {
    let text = "# R\n\nintro\n\n## Chaos\n\n<!-- chaos:begin -->\nold\n<!-- chaos:end -->\n\nnotes\n\n## Soak\n\n<!-- soak:begin -->\nsoak\n<!-- soak:end -->\n";
    let updated = replace_section(text, "chaos", "Chaos", "new\n");
    assert_eq!(
        updated,
        "# R\n\nintro\n\n## Chaos\n\n<!-- chaos:begin -->\nnew\n<!-- chaos:end -->\n\nnotes\n\n## Soak\n\n<!-- soak:begin -->\nsoak\n<!-- soak:end -->\n"
    );
}

#[test]
fn a_marker_mentioned_in_prose_is_not_a_boundary() {
    let text =
        "see `<!-- chaos:begin -->` below\n\n<!-- chaos:begin -->\nold\n<!-- chaos:end -->\n";
    let updated = replace_section(text, "chaos", "Chaos", "new");
    assert_eq!(
        updated,
        "see `<!-- chaos:begin -->` below\n\n<!-- chaos:begin -->\nnew\n<!-- chaos:end -->\n"
    );
}

#[test]
fn a_missing_section_is_appended() {
    let updated = replace_section("# R\n\nintro\n", "soak", "Soak", "figures");
    assert_eq!(
        updated,
        "# R\n\nintro\n\n## Soak\n\n<!-- soak:begin -->\nfigures\n<!-- soak:end -->\n"
    );
}

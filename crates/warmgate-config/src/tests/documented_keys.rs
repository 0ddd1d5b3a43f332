//! `docs/configuration.md` against the code: every table's key list and
//! every check kind (with its kind-specific keys) as the parser knows them.
//! The parser's own unknown-key errors are the source, so a key added to
//! the code and not to the document (or the other way round) fails here.

use std::collections::{BTreeMap, BTreeSet};

use crate::Config;
use crate::values::ProbeKind;

const DOC: &str = include_str!("../../../../docs/configuration.md");

/// A key no table has, to make the parser list the ones it does.
const PROBE_KEY: &str = "zz_not_a_key";

/// The keys the parser expects where `table_toml` (a table header, or
/// nothing for the top level) is followed by an unknown key.
fn keys_the_parser_expects(table_toml: &str) -> BTreeSet<String> {
    let text = format!("{table_toml}\n{PROBE_KEY} = 1\n");
    let error = Config::from_toml_str(&text, "keys.toml")
        .expect_err("an unknown key is refused")
        .to_string();
    let expected = error
        .split_once(", expected ")
        .unwrap_or_else(|| panic!("no expected keys in {error:?}"))
        .1;
    let keys = backticked(expected);
    assert!(!keys.is_empty(), "no keys in {error:?}");
    keys
}

/// The `` `word` `` spans of `text` that are key-like (lower case and `_`).
fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// The document's `## ` sections (`### ` subsections within them) by
/// heading, each with the keys its tables' rows begin with.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut heading = String::new();
    for line in DOC.lines() {
        if let Some(title) = line
            .strip_prefix("## ")
            .or_else(|| line.strip_prefix("### kind = "))
            .or_else(|| line.strip_prefix("### `kind = "))
        {
            heading = title.trim_matches('`').trim_end_matches('`').to_owned();
            sections.entry(heading.clone()).or_default();
            continue;
        }
        let Some(first_cell) = line.strip_prefix("| `") else {
            continue;
        };
        let key = first_cell.split('`').next().unwrap_or_default();
        if backticked(&format!("`{key}`")).contains(key) {
            sections
                .entry(heading.clone())
                .or_default()
                .insert(key.to_owned());
        }
    }
    sections
}

fn section<'a>(
    sections: &'a BTreeMap<String, BTreeSet<String>>,
    heading: &str,
) -> &'a BTreeSet<String> {
    sections
        .get(heading)
        .unwrap_or_else(|| panic!("docs/configuration.md has no section {heading:?}"))
}

fn assert_same(table: &str, in_code: &BTreeSet<String>, in_doc: &BTreeSet<String>) {
    let undocumented: Vec<_> = in_code.difference(in_doc).collect();
    let unknown: Vec<_> = in_doc.difference(in_code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "{table}: keys the parser takes but docs/configuration.md does not list: {undocumented:?}; \
         keys the document lists but the parser refuses: {unknown:?}"
    );
}

#[test]
fn every_table_documents_exactly_the_keys_the_parser_takes() {
    let sections = documented();
    let tables = [
        ("[gate]", "[gate]"),
        ("[auth]", "[auth]"),
        ("[telemetry]", "[telemetry]"),
        ("[routes]", "[routes]"),
        ("[[route]]", "[[route]]"),
        ("[upstream]", "[upstream]"),
        ("[clients]", "[clients]"),
    ];
    for (header, heading) in tables {
        assert_same(
            header,
            &keys_the_parser_expects(header),
            section(&sections, heading),
        );
    }
}

#[test]
fn the_top_level_documents_its_keys_and_has_a_section_per_table() {
    let sections = documented();
    let mut in_doc = section(&sections, "Top level").clone();
    // Each table has a section of its own rather than a row.
    for heading in sections.keys() {
        if let Some(name) = heading
            .strip_prefix("[[")
            .and_then(|name| name.strip_suffix("]]"))
            .or_else(|| {
                heading
                    .strip_prefix('[')
                    .and_then(|name| name.strip_suffix(']'))
            })
            && !name.contains('.')
        {
            in_doc.insert(name.to_owned());
        }
    }
    assert_same("top level", &keys_the_parser_expects(""), &in_doc);
}

#[test]
fn the_phase_tables_document_the_keys_the_parser_takes() {
    let sections = documented();
    // `[[phase]]` lists its checks as the row `[[phase.check]]`.
    let mut phase = section(&sections, "[[phase]]").clone();
    phase.insert("check".to_owned());
    assert_same("[[phase]]", &keys_the_parser_expects("[[phase]]"), &phase);

    // `[[phase.check]]`: the keys every kind shares in its own section,
    // then each kind's in its subsection.
    let mut check = section(&sections, "[[phase.check]]").clone();
    for kind in ProbeKind::ALL {
        check.extend(
            section(&sections, &format!("\"{}\"", kind.name()))
                .iter()
                .cloned(),
        );
    }
    assert_same(
        "[[phase.check]]",
        &keys_the_parser_expects("[[phase]]\nname = \"p\"\n[[phase.check]]"),
        &check,
    );
}

#[test]
fn every_check_kind_has_a_subsection_with_exactly_its_own_keys() {
    let sections = documented();
    let kinds: BTreeSet<String> = ProbeKind::ALL
        .iter()
        .map(|kind| kind.name().to_owned())
        .collect();
    let documented_kinds: BTreeSet<String> = sections
        .keys()
        .filter_map(|heading| heading.strip_prefix('"')?.strip_suffix('"'))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        documented_kinds, kinds,
        "the `### kind = \"...\"` subsections"
    );
    for kind in ProbeKind::ALL {
        let in_code = kind.keys().iter().map(|key| (*key).to_owned()).collect();
        assert_same(
            &format!("kind = \"{}\"", kind.name()),
            &in_code,
            section(&sections, &format!("\"{}\"", kind.name())),
        );
    }
    // And the `kind` row names every kind.
    let kind_row = DOC
        .lines()
        .find(|line| line.starts_with("| `kind` |"))
        .expect("the [[phase.check]] table has a `kind` row");
    let named: BTreeSet<String> = backticked(kind_row.trim_start_matches("| `kind` |"));
    assert_eq!(
        named, kinds,
        "the `kind` row of [[phase.check]]: {kind_row}"
    );
}

//! `docs/reliability.md`: each command (`chaos`, `soak`) rewrites its own
//! section between `<!-- NAME:begin -->` and `<!-- NAME:end -->`, keeping
//! the other's and any hand-written text; and the pieces both sections
//! share: checks with pass or fail, and the chat's delivery check.

use std::path::PathBuf;

use anyhow::Context as _;
use warmgate_loadgen::report::ChatSummary;

use crate::command::workspace_root;

/// One judged property.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) passed: bool,
    /// A required check failing fails the command; the others are reported.
    pub(crate) required: bool,
    pub(crate) figures: String,
}

impl Check {
    pub(crate) fn required(name: &str, passed: bool, figures: String) -> Check {
        Check {
            name: name.to_owned(),
            passed,
            required: true,
            figures,
        }
    }

    pub(crate) fn reported(name: &str, passed: bool, figures: String) -> Check {
        Check {
            required: false,
            ..Check::required(name, passed, figures)
        }
    }

    fn verdict(&self) -> &'static str {
        match (self.passed, self.required) {
            (true, _) => "pass",
            (false, true) => "**FAIL**",
            (false, false) => "not met (reported only)",
        }
    }
}

/// The delivery rule both the chaos run and the soak hold the chat to:
/// every acknowledged message reached every member of its room connected
/// throughout exactly once, and nothing else arrived (no duplicate, no
/// message no client sent, no frame from another room).
pub(crate) fn every_acked_message_was_delivered_exactly_once(chat: &ChatSummary) -> Check {
    Check::required(
        "every acknowledged chat message was delivered exactly once to every member of its room connected throughout",
        chat.messages_acked > 0
            && chat.missing == 0
            && chat.duplicated == 0
            && chat.unknown_deliveries == 0
            && chat.foreign_frames == 0
            && chat.delivered_once == chat.deliveries_required,
        format!(
            "{} chat clients, {} of {} messages acked; {} of {} required deliveries exactly once; {} missing, {} duplicated, {} unknown, {} foreign",
            chat.joined,
            chat.messages_acked,
            chat.messages_sent,
            chat.delivered_once,
            chat.deliveries_required,
            chat.missing,
            chat.duplicated,
            chat.unknown_deliveries,
            chat.foreign_frames
        ),
    )
}

/// The checks as a Markdown table.
pub(crate) fn checks_table(checks: &[Check]) -> String {
    let mut table = String::from("| check | result | figures |\n|---|---|---|\n");
    for check in checks {
        table.push_str(&format!(
            "| {} | {} | {} |\n",
            check.name,
            check.verdict(),
            check.figures.replace('|', "\\|").replace('\n', " ")
        ));
    }
    table
}

/// The checks on the console.
pub(crate) fn print_checks(command: &str, checks: &[Check]) {
    for check in checks {
        println!(
            "{command}: [{}] {}: {}",
            check.verdict(),
            check.name,
            check.figures
        );
    }
}

/// The required checks that failed, by name.
pub(crate) fn failed(checks: &[Check]) -> Vec<&str> {
    checks
        .iter()
        .filter(|check| check.required && !check.passed)
        .map(|check| check.name.as_str())
        .collect()
}

/// The verdict line that opens a section: every required check passing,
/// or which failed.
pub(crate) fn verdict(checks: &[Check]) -> String {
    let failed = failed(checks);
    if failed.is_empty() {
        format!(
            "**Result: every required check passes** ({} checks).",
            checks.iter().filter(|check| check.required).count()
        )
    } else {
        format!(
            "**Result: {} required check(s) FAIL:** {}.",
            failed.len(),
            failed.join("; ")
        )
    }
}

const SKELETON: &str = "# Reliability

How warmgate behaves when its dependencies fail under load, and over
time. Both sections below are measured on real processes (PostgreSQL,
Redis, a stand-in auth service, the release build of warmgate and the load
generator, each a process of its own) and rewritten by the command named
in them; text outside the markers is kept.

";

/// Replaces the `name` section of `docs/reliability.md` with `body`
/// (creating the file, or appending the section under `heading`, when
/// missing); returns the file's path.
pub(crate) fn write_section(name: &str, heading: &str, body: &str) -> anyhow::Result<PathBuf> {
    let dir = crate::ci::docs_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("reliability.md");
    // A CI run starts from the committed report, so its copy reads whole.
    let committed = workspace_root().join("docs").join("reliability.md");
    let text = std::fs::read_to_string(&path)
        .or_else(|_| std::fs::read_to_string(&committed))
        .unwrap_or_else(|_| SKELETON.to_owned());
    let updated = replace_section(&text, name, heading, body);
    std::fs::write(&path, updated).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn replace_section(text: &str, name: &str, heading: &str, body: &str) -> String {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    match (marker_line(text, &begin), marker_line(text, &end)) {
        (Some(start), Some(stop)) if start < stop => {
            format!("{}{section}{}", &text[..start], &text[stop + end.len()..])
        }
        _ => format!("{}\n\n## {heading}\n\n{section}\n", text.trim_end()),
    }
}

/// Where `marker` stands alone on a line (a mention of it in prose does not
/// count).
fn marker_line(text: &str, marker: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == marker {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests;

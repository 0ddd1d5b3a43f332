//! The settings file each server keeps in its directory (port, passwords,
//! kind), so that another process can find and stop it later.
//!
//! The format is `key=value` lines; lines starting with `#` are comments.
//! The file is readable by its owner only, because it holds passwords.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::DevServerError;

/// The file's name inside a server's directory.
pub(crate) const SETTINGS_FILE_NAME: &str = "devserver.settings";

/// The values read from a settings file.
#[derive(Debug)]
pub(crate) struct Settings {
    path: PathBuf,
    values: Vec<(String, String)>,
}

impl Settings {
    /// Reads the settings file in `directory` and checks that it describes a
    /// server of `kind`.
    pub(crate) fn read(directory: &Path, kind: &str) -> Result<Settings, DevServerError> {
        let path = directory.join(SETTINGS_FILE_NAME);
        let text = fs::read_to_string(&path).map_err(|source| DevServerError::Io {
            action: "read the devserver settings file",
            path: path.clone(),
            source,
        })?;
        let values = text
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect();
        let settings = Settings { path, values };
        let found_kind = settings.get("kind")?;
        if found_kind != kind {
            return Err(settings.bad(format!(
                "it describes a `{found_kind}` server, not `{kind}`"
            )));
        }
        Ok(settings)
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &str) -> Result<&str, DevServerError> {
        self.values
            .iter()
            .find(|(found, _)| found == key)
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| self.bad(format!("it has no `{key}` line")))
    }

    /// The value of `key`, or `None` when the line is absent or empty.
    pub(crate) fn get_optional(&self, key: &str) -> Option<&str> {
        self.get(key).ok().filter(|value| !value.is_empty())
    }

    /// The value of `key` as a port number.
    pub(crate) fn get_port(&self, key: &str) -> Result<u16, DevServerError> {
        let value = self.get(key)?;
        value
            .parse()
            .map_err(|_| self.bad(format!("`{key}={value}` is not a port number")))
    }

    fn bad(&self, reason: String) -> DevServerError {
        DevServerError::BadSettingsFile {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Writes (or replaces) the settings file in `directory`.
pub(crate) fn write_settings(
    directory: &Path,
    kind: &str,
    values: &[(&str, &str)],
) -> Result<(), DevServerError> {
    let path = directory.join(SETTINGS_FILE_NAME);
    let mut text = format!(
        "# Written by warmgate-devservers: how to reach the {kind} server in this directory.\nkind={kind}\n"
    );
    for (key, value) in values {
        text.push_str(&format!("{key}={value}\n"));
    }
    let io_error = |source| DevServerError::Io {
        action: "write the devserver settings file",
        path: path.clone(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error)?;
    file.write_all(text.as_bytes()).map_err(io_error)
}

//! What makes a server ephemeral: a free loopback port, a generated
//! password, and a scratch directory that disappears with its owner.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::DevServerError;

/// Makes successive names and passwords within one process differ even when
/// the clock does not move between two calls.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// Returns a port on `127.0.0.1` that was free a moment ago.
///
/// The port is found by binding port 0 and closing the listener again, so
/// another process may take it before the server binds it; the servers'
/// `start_new` functions therefore retry with a new port when that happens.
pub(crate) fn free_loopback_port() -> Result<u16, DevServerError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(DevServerError::NoFreePort)?;
    let address = listener.local_addr().map_err(DevServerError::NoFreePort)?;
    Ok(address.port())
}

/// Returns a fresh password of 32 lowercase hex digits.
///
/// Hex digits need no escaping in a URL, a shell or a configuration file.
/// The randomness comes from the standard library's randomly keyed hasher,
/// which is plenty for a server that only listens on loopback and lives as
/// long as a test.
pub fn generate_password() -> String {
    let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let mut password = String::with_capacity(32);
    for half in 0..2_u8 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u8(half);
        hasher.write_u64(serial);
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        password.push_str(&format!("{:016x}", hasher.finish()));
    }
    password
}

/// A fresh directory under the system temporary directory, removed with
/// everything in it when dropped.
///
/// Unlike most temporary directories it is world-traversable (mode 0755):
/// when the caller is root, PostgreSQL runs as the `postgres` user, which
/// must be able to reach a cluster inside it.
///
/// Drop the servers before their directory: declare the `ScratchDir` first,
/// so that it is dropped last.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `warmgate-<label>-<pid>-<n>` under the system temporary
    /// directory.
    pub fn new(label: &str) -> Result<ScratchDir, DevServerError> {
        let parent = std::env::temp_dir();
        loop {
            let serial = NEXT_SERIAL.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("warmgate-{label}-{}-{serial}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => {
                    let scratch = ScratchDir { path };
                    fs::set_permissions(&scratch.path, fs::Permissions::from_mode(0o755)).map_err(
                        |source| DevServerError::Io {
                            action: "set the mode of",
                            path: scratch.path.clone(),
                            source,
                        },
                    )?;
                    return Ok(scratch);
                }
                // A directory left behind by an earlier process with the same
                // pid is skipped rather than reused, so every run starts clean.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(DevServerError::Io {
                        action: "create the scratch directory",
                        path,
                        source,
                    });
                }
            }
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Nothing useful can be done about a failure here, and a leftover
        // directory under the temporary directory does no harm.
        let _ = fs::remove_dir_all(&self.path);
    }
}

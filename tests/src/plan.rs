//! Configs for the tests, built rather than pasted: a [`Plan`] is a
//! warmgate config in parts (top-level keys, single tables such as
//! `[gate]` and `[auth]`, routes, and phases of [`Check`]s) and writes
//! itself out as TOML.
//!
//! A plan starts on free loopback ports (`listen` and `admin_listen` on
//! `127.0.0.1:0`); [`Plan::app_signal`] is the plan most tests start from,
//! one whose readiness is in the test's hands. What each key means is
//! `docs/configuration.md`'s: this module knows the config's shape, not its
//! rules, so a test can still write a plan that warmgate refuses.
//!
//! The JWT `[auth]` of the tests' tokens is `jwks.rs`'s, the proxy tables
//! `proxy.rs`'s; both build on this.

use std::fmt;
use std::net::SocketAddr;

/// A value that can stand on the right of `key = ` in TOML.
pub trait TomlValue {
    /// The value written as TOML.
    fn to_toml(&self) -> String;
}

impl TomlValue for str {
    fn to_toml(&self) -> String {
        quote(self)
    }
}

impl TomlValue for String {
    fn to_toml(&self) -> String {
        quote(self)
    }
}

impl TomlValue for bool {
    fn to_toml(&self) -> String {
        self.to_string()
    }
}

impl TomlValue for SocketAddr {
    fn to_toml(&self) -> String {
        quote(&self.to_string())
    }
}

macro_rules! integer_values {
    ($($integer:ty),*) => {
        $(impl TomlValue for $integer {
            fn to_toml(&self) -> String {
                self.to_string()
            }
        })*
    };
}

integer_values!(i32, i64, u16, u32, u64, usize);

impl<T: TomlValue> TomlValue for [T] {
    fn to_toml(&self) -> String {
        let items: Vec<String> = self.iter().map(TomlValue::to_toml).collect();
        format!("[{}]", items.join(", "))
    }
}

impl<T: TomlValue, const N: usize> TomlValue for [T; N] {
    fn to_toml(&self) -> String {
        self.as_slice().to_toml()
    }
}

impl<T: TomlValue + ?Sized> TomlValue for &T {
    fn to_toml(&self) -> String {
        (**self).to_toml()
    }
}

/// `text` as a TOML basic string.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

// === Table ===

/// The keys of one TOML table, in the order they were first set.
#[derive(Debug, Clone, Default)]
pub struct Table {
    keys: Vec<(String, String)>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    /// Sets `key`, replacing its value if it was set already.
    pub fn set(mut self, key: &str, value: impl TomlValue) -> Table {
        let value = value.to_toml();
        match self.keys.iter_mut().find(|(name, _)| name == key) {
            Some((_, old)) => *old = value,
            None => self.keys.push((key.to_owned(), value)),
        }
        self
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn write(&self, out: &mut String) {
        for (key, value) in &self.keys {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
}

// === Check ===

/// One `[[phase.check]]` table: a name, a kind and the kind's keys.
#[derive(Debug, Clone)]
pub struct Check {
    table: Table,
}

impl Check {
    /// A check `name` of kind `kind`, with no other keys yet.
    pub fn new(name: &str, kind: &str) -> Check {
        Check {
            table: Table::new().set("name", name).set("kind", kind),
        }
    }

    /// A signal, set through the admin listener.
    pub fn signal(name: &str) -> Check {
        Check::new(name, "signal")
    }

    /// A TCP connect to `addr` (`host:port`).
    pub fn tcp(name: &str, addr: impl fmt::Display) -> Check {
        Check::new(name, "tcp").set("addr", addr.to_string())
    }

    /// An HTTP GET of `url`.
    pub fn http(name: &str, url: &str) -> Check {
        Check::new(name, "http").set("url", url)
    }

    /// A PostgreSQL login at `url`.
    pub fn postgres(name: &str, url: &str) -> Check {
        Check::new(name, "postgres").set("url", url)
    }

    /// A Redis `PING` at `url`.
    pub fn redis(name: &str, url: &str) -> Check {
        Check::new(name, "redis").set("url", url)
    }

    /// The auth service's keys, loaded from the `[auth]` table's JWKS URL.
    pub fn jwks(name: &str) -> Check {
        Check::new(name, "jwks")
    }

    /// Sets one more key of the check (`interval`, `url_env`, ...).
    pub fn set(self, key: &str, value: impl TomlValue) -> Check {
        Check {
            table: self.table.set(key, value),
        }
    }

    /// Not required: failing, it degrades the gate instead of holding it.
    pub fn optional(self) -> Check {
        self.set("required", false)
    }
}

// === Plan ===

/// A warmgate config under construction; [`Plan::to_toml`] (or `Display`,
/// or `String::from`) writes it out.
#[derive(Debug, Clone)]
pub struct Plan {
    top: Table,
    /// Single tables (`gate`, `auth`, `upstream`, ...), by name, in the
    /// order first named.
    tables: Vec<(String, Table)>,
    routes: Vec<Table>,
    phases: Vec<(String, Vec<Check>)>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan::new()
    }
}

impl Plan {
    /// A plan with both listeners on free loopback ports, and nothing else.
    pub fn new() -> Plan {
        Plan {
            top: Table::new()
                .set("listen", "127.0.0.1:0")
                .set("admin_listen", "127.0.0.1:0"),
            tables: Vec::new(),
            routes: Vec::new(),
            phases: Vec::new(),
        }
    }

    /// The plan whose readiness is in the test's hands: one phase
    /// `services` with the required signal `app` (set it with
    /// [`crate::Gateway::set_signal`]).
    pub fn app_signal() -> Plan {
        Plan::new().phase("services", [Check::signal("app")])
    }

    /// Sets a top-level key (`admin_token_env`, `listen`, ...).
    pub fn set(mut self, key: &str, value: impl TomlValue) -> Plan {
        self.top = self.top.set(key, value);
        self
    }

    /// Sets keys of the `[gate]` table.
    pub fn gate(self, settings: impl FnOnce(Table) -> Table) -> Plan {
        self.table("gate", settings)
    }

    /// Sets keys of the single table `name` (`auth`, `upstream`,
    /// `telemetry`, `routes`, ...), adding the table the first time.
    pub fn table(mut self, name: &str, keys: impl FnOnce(Table) -> Table) -> Plan {
        let index = match self.tables.iter().position(|(table, _)| table == name) {
            Some(index) => index,
            None => {
                self.tables.push((name.to_owned(), Table::new()));
                self.tables.len() - 1
            }
        };
        let table = std::mem::take(&mut self.tables[index].1);
        self.tables[index].1 = keys(table);
        self
    }

    /// Adds a `[[route]]`: WebSocket clients on `path` go to the app `app`.
    pub fn route(mut self, path: &str, app: &str) -> Plan {
        self.routes
            .push(Table::new().set("path", path).set("app", app));
        self
    }

    /// Proxies `/ws` to the upstream at `url` (`ws://host:port`): the
    /// `[upstream]` table's `url`, and the route to the app `upstream`.
    pub fn upstream(self, url: &str) -> Plan {
        self.table("upstream", |upstream| upstream.set("url", url))
            .route("/ws", "upstream")
    }

    /// Adds a phase `name` with `checks`, after the phases so far.
    pub fn phase(mut self, name: &str, checks: impl IntoIterator<Item = Check>) -> Plan {
        self.phases
            .push((name.to_owned(), checks.into_iter().collect()));
        self
    }

    /// Adds `check` to the last phase.
    pub fn check(mut self, check: Check) -> Plan {
        let (_, checks) = self
            .phases
            .last_mut()
            .expect("a check goes into a phase: add one with Plan::phase first");
        checks.push(check);
        self
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        self.top.write(&mut out);
        for (name, table) in &self.tables {
            if !table.is_empty() {
                out.push_str(&format!("\n[{name}]\n"));
                table.write(&mut out);
            }
        }
        for route in &self.routes {
            out.push_str("\n[[route]]\n");
            route.write(&mut out);
        }
        for (name, checks) in &self.phases {
            out.push_str(&format!("\n[[phase]]\nname = {}\n", quote(name)));
            for check in checks {
                out.push_str("\n[[phase.check]]\n");
                check.table.write(&mut out);
            }
        }
        out
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml())
    }
}

impl From<Plan> for String {
    fn from(plan: Plan) -> String {
        plan.to_toml()
    }
}

#[cfg(test)]
mod tests;

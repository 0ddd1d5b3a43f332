//! What a test needs around warmgate: scratch directories, free loopback
//! ports, and real PostgreSQL and Redis servers in scratch directories of
//! their own.
//!
//! The servers themselves are `warmgate-devservers`'; this module only ties
//! each to a directory that outlives it. Nothing here starts warmgate.

use warmgate_devservers::{Postgres, Redis, ScratchDir};

use crate::blocking;

/// A fresh directory for one test's files, removed when dropped.
pub fn scratch_dir() -> ScratchDir {
    ScratchDir::new("test").unwrap()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server and the scratch directory that holds its files: the server is
/// dropped (and so stopped) first, then the directory is removed.
#[derive(Debug)]
pub struct InScratch<T> {
    server: T,
    _dir: ScratchDir,
}

impl<T> InScratch<T> {
    pub fn new(server: T, dir: ScratchDir) -> Self {
        InScratch { server, _dir: dir }
    }
}

impl<T> std::ops::Deref for InScratch<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.server
    }
}

impl<T> std::ops::DerefMut for InScratch<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.server
    }
}

/// A fresh PostgreSQL cluster in its own scratch directory, started or
/// only prepared.
pub async fn new_postgres(started: bool) -> InScratch<Postgres> {
    let dir = scratch_dir();
    let path = dir.path().to_owned();
    let postgres = blocking("a PostgreSQL cluster", move || {
        if started {
            Postgres::start_new(&path)
        } else {
            Postgres::prepare_without_starting(&path)
        }
    })
    .await
    .unwrap();
    InScratch::new(postgres, dir)
}

/// A fresh Redis server in its own scratch directory, requiring
/// `password` if given.
pub async fn new_redis(password: Option<&'static str>) -> InScratch<Redis> {
    let dir = scratch_dir();
    let path = dir.path().to_owned();
    let redis = blocking("a Redis server", move || Redis::start_new(&path, password))
        .await
        .unwrap();
    InScratch::new(redis, dir)
}

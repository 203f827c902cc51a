//! The CQL node the tests run against, and keyspaces leased to one test at
//! a time. Shared by the unit tests (`store::scylla::tests`) and the
//! integration suite (included there with `#[path]`), so it uses nothing
//! but std and libc.
//!
//! The node comes from `OBSCURA_TEST_CQL_NODES` (a ScyllaDB or Cassandra
//! anywhere, `host:port,…`), or else is started from `../shared/cassandra`
//! (or `OBSCURA_TEST_CASSANDRA_DIR`) the first time a test needs it: one
//! node for every test process of the run (nextest runs each test in a
//! process of its own). A file lock serializes the start; every test
//! process holds a shared lock on `users.lock` while it lives; a reaper
//! started with the node stops it once no test has held that lock for 30
//! seconds. Keyspaces come from a pool (`obscura_test_0` …), each leased
//! with a lock file for the life of the test process and emptied by its
//! next user (the server's debug-only `--test-scylla-reset-keyspace`), so
//! no two live tests ever share one: the push worker and the retention
//! sweep act on a whole keyspace. Within one process, leases are held one
//! at a time ([`Serial`]): `cargo test` runs a binary's tests on threads,
//! and the node's lightweight transactions time out when several
//! concurrency tests share it on a small machine (nextest runs each test in
//! a process of its own, and its `cql-node` test group does the same).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

/// Keyspaces in the pool.
const POOL: usize = 8;
/// Port of the node the tests start (19342 keeps clear of a developer's 9042).
const DEFAULT_PORT: u16 = 19_342;
/// A node idle this long after the last test process is stopped, seconds.
const IDLE_SECS: u64 = 30;

/// Why no node is available.
pub type NodeError = String;

fn state_dir() -> PathBuf {
    std::env::var_os("OBSCURA_TEST_CQL_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("obscura-cql-tests"))
}

/// Where the Cassandra build is, if there is one.
pub fn cassandra_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("OBSCURA_TEST_CASSANDRA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cassandra"));
    dir.join("start-node").exists().then_some(dir)
}

fn open_lock(path: &Path) -> Result<File, NodeError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Takes `flock(how)` on `file`; `false` if `LOCK_NB` was given and it is held.
fn flock(file: &File, how: libc::c_int) -> bool {
    // SAFETY: flock(2) on a descriptor this File owns.
    unsafe { libc::flock(file.as_raw_fd(), how) == 0 }
}

fn port() -> u16 {
    std::env::var("OBSCURA_TEST_CQL_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(DEFAULT_PORT)
}

fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// The contact points of the test node, starting one if need be.
pub fn nodes() -> Result<String, NodeError> {
    static NODES: OnceLock<Result<String, NodeError>> = OnceLock::new();
    NODES.get_or_init(find_or_start).clone()
}

fn find_or_start() -> Result<String, NodeError> {
    if let Ok(nodes) = std::env::var("OBSCURA_TEST_CQL_NODES") {
        return Ok(nodes);
    }
    let cassandra = cassandra_dir().ok_or_else(|| {
        "no CQL node: set OBSCURA_TEST_CQL_NODES=host:port or put a Cassandra build in ../shared/cassandra".to_string()
    })?;
    let state = state_dir();
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    let global = open_lock(&state.join("lock"))?;
    flock(&global, libc::LOCK_EX);
    // Held (shared) until this process exits: the reaper waits for none.
    static USERS: OnceLock<File> = OnceLock::new();
    let users = open_lock(&state.join("users.lock"))?;
    flock(&users, libc::LOCK_SH);
    let _ = USERS.set(users);
    let port = port();
    if !answers(port) {
        start(&cassandra, &state, port)?;
    }
    let _ = std::fs::write(state.join("last_used"), b"");
    flock(&global, libc::LOCK_UN);
    Ok(format!("127.0.0.1:{port}"))
}

fn start(cassandra: &Path, state: &Path, port: u16) -> Result<(), NodeError> {
    let node = state.join("node");
    let out = Command::new(cassandra.join("start-node"))
        .arg("--dir")
        .arg(&node)
        .args(["--port", &port.to_string(), "--heap", "768M"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("start-node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "start-node failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    spawn_reaper(cassandra, state, &node)
}

/// Starts the reaper: a detached shell loop that stops the node once no
/// test process holds `users.lock` and none used it for `IDLE_SECS`.
fn spawn_reaper(cassandra: &Path, state: &Path, node: &Path) -> Result<(), NodeError> {
    let script = format!(
        "cd {state:?} || exit 1; while sleep 10; do \
           flock -x lock sh -c 'flock -n -x users.lock true || exit 1; \
             age=$(( $(date +%s) - $(stat -c %Y last_used) )); [ $age -gt {IDLE_SECS} ] || exit 1; \
             {stop:?} {node:?} >/dev/null 2>&1; exit 0' && exit 0; \
         done",
        stop = cassandra.join("stop-node"),
    );
    let mut log = open_lock(&state.join("reaper.log"))?;
    let _ = writeln!(log, "reaper for {}", node.display());
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the node's reaper: {e}"))?;
    Ok(())
}

/// The thread of this process whose test holds leases, and how many; and
/// their release.
static LEASED: (Mutex<Option<(ThreadId, usize)>>, Condvar) = (Mutex::new(None), Condvar::new());

/// This process's one test at a time on the node: taken before a keyspace,
/// given back when the lease ends. A test may hold several leases (two
/// servers, say), so the thread that holds it may take it again.
struct Serial;

impl Serial {
    fn take() -> Self {
        let (leased, released) = &LEASED;
        let me = std::thread::current().id();
        let mut holder = leased.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match *holder {
                Some((thread, n)) if thread == me => {
                    *holder = Some((thread, n + 1));
                    return Serial;
                }
                Some(_) => holder = released.wait(holder).unwrap_or_else(|p| p.into_inner()),
                None => {
                    *holder = Some((me, 1));
                    return Serial;
                }
            }
        }
    }
}

impl Drop for Serial {
    fn drop(&mut self) {
        let (leased, released) = &LEASED;
        let mut holder = leased.lock().unwrap_or_else(|p| p.into_inner());
        *holder = match *holder {
            Some((thread, n)) if n > 1 => Some((thread, n - 1)),
            _ => None,
        };
        released.notify_all();
    }
}

/// A keyspace of the pool, leased for the life of this value.
pub struct Lease {
    /// The keyspace's name.
    pub keyspace: String,
    _lock: File,
    _serial: Serial,
}

/// Leases a keyspace of the pool, waiting while all are in use.
pub fn lease() -> Result<Lease, NodeError> {
    let state = state_dir();
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    let serial = Serial::take();
    loop {
        for i in 0..POOL {
            let lock = open_lock(&state.join(format!("keyspace-{i}.lock")))?;
            if flock(&lock, libc::LOCK_EX | libc::LOCK_NB) {
                return Ok(Lease {
                    keyspace: format!("obscura_test_{i}"),
                    _lock: lock,
                    _serial: serial,
                });
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

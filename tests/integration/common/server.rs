//! `TestServer`: one real `obscura-relay` process in its own temp dir, on ports chosen by the
//! kernel. It owns the child process: dropping it sends SIGTERM, waits up to 10 s, then
//! SIGKILLs. The server's stdout and stderr go to `server.log` in the temp dir; its tail is
//! part of the error when a start fails, and is written to the test's (captured) stderr when
//! the server is dropped, so the runner shows it with a failing test.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::client::Client;
use super::cql_node;

/// How long a start may take before we give up (the ready file must appear by then); a start on
/// the CQL node may first create a keyspace and its tables.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the ready file is polled.
const READY_POLL: Duration = Duration::from_millis(20);
/// How long a SIGTERMed server gets to exit before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// `OBSCURA_*` variables of the test's environment that reach the server; all others are
/// removed.
const PASSED_THROUGH_ENV: &[&str] = &["OBSCURA_IO_DRIVER"];
/// The HS256 secret every test server uses, so tests can craft tokens (`common::jwt`): 64 hex
/// characters, as `openssl rand -hex 32` makes them (the server refuses weak secrets).
pub const JWT_SECRET: &str = "9d3c6f0e2b7a41d58c1e6f3a0b9d27c4e5f8a1b3c6d9e0f2a4b7c8d1e3f5a6b9";

/// Arguments every test server gets before the test's own (the CLI lets a later flag win):
/// `--auth-jwt-secret` too unless `with_secret` is false. Rate limits are raised the way the
/// reference suite raises them.
fn default_args(with_secret: bool) -> Vec<String> {
    let secret = ["--auth-jwt-secret", JWT_SECRET];
    let secret: &[&str] = if with_secret { &secret } else { &[] };
    [
        "--server-host",
        "127.0.0.1",
        "--server-port",
        "0",
        "--server-mgmt-port",
        "0",
        "--durability",
        "buffered",
        "--shards",
        "2",
        "--rate-limit-per-second",
        "10000",
        "--rate-limit-burst",
        "10000",
        "--auth-rate-limit-per-second",
        "10000",
        "--auth-rate-limit-burst",
        "10000",
    ]
    .iter()
    .chain(secret)
    .map(|s| s.to_string())
    .collect()
}

/// Which store a test server keeps its state in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStore {
    /// fjall in the server's temp dir.
    Embedded,
    /// A keyspace leased on the test CQL node (`common::cql_node`).
    Scylla,
}

impl TestStore {
    /// The store of this run: `OBSCURA_TEST_STORE=scylla` runs the suite on the CQL node.
    pub fn of_run() -> Self {
        match std::env::var("OBSCURA_TEST_STORE").as_deref() {
            Ok("scylla") => TestStore::Scylla,
            _ => TestStore::Embedded,
        }
    }
}

/// The arguments that put a server (or a subcommand) on a leased keyspace.
pub fn scylla_args(lease: &cql_node::Lease) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let nodes = cql_node::nodes()?;
    Ok([
        "--store",
        "scylla",
        "--scylla-nodes",
        &nodes,
        "--scylla-keyspace",
        &lease.keyspace,
        "--scylla-replication-factor",
        "1",
        "--scylla-create-schema",
        "true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect())
}

pub struct TestServer {
    /// The relay binary it runs: this build's, or another release's for a rolling deploy.
    binary: PathBuf,
    child: Option<Child>,
    /// Set once we have signalled the child ourselves, so an exit is expected.
    signalled: bool,
    /// Whether `--auth-jwt-secret JWT_SECRET` is among the default arguments.
    with_secret: bool,
    extra_args: Vec<String>,
    /// Environment variables set on the process (besides the test's own, filtered).
    env: Vec<(String, String)>,
    pub main_port: u16,
    pub mgmt_port: u16,
    /// The store's arguments (before the test's own), and for a first start only, the reset of
    /// a leased keyspace.
    store_args: Vec<String>,
    first_start_args: Vec<String>,
    // Declared last: dropped after `Drop::drop` has stopped the process.
    lease: Option<cql_node::Lease>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with the default arguments.
    pub fn start() -> Result<Self, Box<dyn std::error::Error>> {
        Self::start_with(&[])
    }

    /// Starts a server with the default arguments followed by `extra` (which win), on the
    /// run's store (`OBSCURA_TEST_STORE`).
    pub fn start_with(extra: &[&str]) -> Result<Self, Box<dyn std::error::Error>> {
        Self::start_on(TestStore::of_run(), extra)
    }

    /// Starts a server on `store` with the default arguments followed by `extra`.
    pub fn start_on(store: TestStore, extra: &[&str]) -> Result<Self, Box<dyn std::error::Error>> {
        match store {
            TestStore::Embedded => Self::start_in(None, false, extra),
            TestStore::Scylla => Self::start_in(Some(cql_node::lease()?), true, extra),
        }
    }

    /// As [`TestServer::start_on`] on the embedded store's temp dir, with `env` set on the
    /// process (e.g. `LD_PRELOAD` of libfaketime to skew its wall clock); every restart keeps it.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Result<Self, Box<dyn std::error::Error>> {
        let mut server = Self::unstarted(None, Vec::new(), extra)?;
        server.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        server.spawn()?;
        Ok(server)
    }

    /// Starts a server on the keyspace `lease` names as it is (nothing emptied).
    pub fn start_on_keyspace(lease: cql_node::Lease, extra: &[&str]) -> Result<Self, Box<dyn std::error::Error>> {
        Self::start_in(Some(lease), false, extra)
    }

    /// Starts a server on the embedded store without `--auth-jwt-secret` (it reads or makes the
    /// key file in its data dir), with `extra` after the defaults.
    pub fn start_without_secret(extra: &[&str]) -> Result<Self, Box<dyn std::error::Error>> {
        let mut server = Self::unstarted(None, Vec::new(), extra)?;
        server.with_secret = false;
        server.spawn()?;
        Ok(server)
    }

    /// Starts another relay of `first`'s deployment: the same store (its keyspace, nothing
    /// emptied; `first` keeps the lease), its own data dir, `extra` after the defaults.
    pub fn start_beside(first: &TestServer, extra: &[&str]) -> Result<Self, Box<dyn std::error::Error>> {
        Self::start_beside_from(first, &first.binary, extra)
    }

    /// As [`TestServer::start_beside`], running `binary` (another release of the relay).
    pub fn start_beside_from(
        first: &TestServer,
        binary: &Path,
        extra: &[&str],
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let mut server = Self::unstarted(None, Vec::new(), extra)?;
        server.store_args = first.store_args.clone();
        server.binary = binary.to_path_buf();
        server.spawn()?;
        Ok(server)
    }

    fn start_in(
        lease: Option<cql_node::Lease>,
        reset: bool,
        extra: &[&str],
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let first_start_args = if reset {
            vec!["--test-scylla-reset-keyspace".to_string()]
        } else {
            Vec::new()
        };
        let mut server = Self::unstarted(lease, first_start_args, extra)?;
        server.spawn()?;
        server.first_start_args.clear();
        Ok(server)
    }

    fn unstarted(
        lease: Option<cql_node::Lease>,
        first_start_args: Vec<String>,
        extra: &[&str],
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let store_args = match &lease {
            Some(lease) => scylla_args(lease)?,
            None => Vec::new(),
        };
        Ok(TestServer {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_obscura-relay")),
            child: None,
            signalled: false,
            with_secret: true,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            main_port: 0,
            mgmt_port: 0,
            store_args,
            first_start_args,
            lease,
            dir: tempfile::Builder::new().prefix("obscura-it-").tempdir()?,
        })
    }

    /// The keyspace of a server on the CQL node.
    pub fn keyspace(&self) -> Option<&str> {
        self.lease.as_ref().map(|l| l.keyspace.as_str())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn ready_file(&self) -> PathBuf {
        self.dir.path().join("ready.json")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn spawn(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let ready = self.ready_file();
        if ready.exists() {
            std::fs::remove_file(&ready)?;
        }
        let log = OpenOptions::new().create(true).append(true).open(self.log_path())?;
        let log_err = log.try_clone()?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(default_args(self.with_secret))
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--ready-file")
            .arg(&ready)
            .args(&self.store_args)
            .args(&self.first_start_args)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Plain log lines (no ANSI colours) in server.log.
            .env("NO_COLOR", "1");
        // Keep the environment from configuring the server behind the test's back, except for
        // the knobs a CI run sets on purpose for the whole suite (`OBSCURA_IO_DRIVER=epoll`
        // runs the tests on the epoll driver).
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("OBSCURA_") && !PASSED_THROUGH_ENV.contains(&name.as_ref()) {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = cmd.spawn()?;
        self.child = Some(child);
        self.signalled = false;

        let started = Instant::now();
        loop {
            if let Some(ports) = read_ready_file(&ready) {
                self.main_port = ports.0;
                self.mgmt_port = ports.1;
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(format!(
                        "server exited during start-up with {status}; log tail:\n{}",
                        self.log_tail(4000)
                    )
                    .into());
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                self.kill_now();
                return Err(format!(
                    "server wrote no ready file {} within {READY_TIMEOUT:?}; log tail:\n{}",
                    ready.display(),
                    self.log_tail(4000)
                )
                .into());
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// The last `max` bytes of the server's combined stdout/stderr.
    pub fn log_tail(&self, max: u64) -> String {
        let Ok(mut f) = File::open(self.log_path()) else {
            return String::from("<no log file>");
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.main_port)
    }

    pub fn mgmt_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.mgmt_port)
    }

    /// A client for the main port.
    pub fn client(&self) -> Client {
        Client::new(self.base_url())
    }

    /// A client for the management port.
    pub fn mgmt_client(&self) -> Client {
        Client::new(self.mgmt_url())
    }

    /// The value of one series of the management port's `/metrics`, named exactly as exposed
    /// (`name` or `name{label="value"}`); 0 when absent.
    pub fn metric(&self, series: &str) -> Result<f64, Box<dyn std::error::Error>> {
        let text = self.mgmt_client().get("/metrics").send()?.text();
        let value = text
            .lines()
            .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .next()
            .map_or(Ok(0.0), str::parse::<f64>)?;
        Ok(value)
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let pid = self.pid().ok_or("server is not running")?;
        self.signalled = true;
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        if rc != 0 {
            return Err(format!("kill(SIGTERM) failed: {}", std::io::Error::last_os_error()).into());
        }
        Ok(())
    }

    /// Sends SIGSTOP (`pause`) or SIGCONT (`resume`): a stopped process holds its sockets and
    /// answers nothing until it is continued.
    pub fn pause(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.signal(libc::SIGSTOP)
    }

    /// Sends SIGCONT (see [`TestServer::pause`]).
    pub fn resume(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.signal(libc::SIGCONT)
    }

    /// The state letter of the running process in `/proc/<pid>/stat` (`T` when stopped).
    pub fn proc_state(&self) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    fn signal(&mut self, signal: libc::c_int) -> Result<(), Box<dyn std::error::Error>> {
        let pid = self.pid().ok_or("server is not running")?;
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        if rc != 0 {
            return Err(format!("kill({signal}) failed: {}", std::io::Error::last_os_error()).into());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Box<dyn std::error::Error>> {
        let child = self.child.as_mut().ok_or("server is not running")?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(Some(status));
            }
            if started.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait up to 10 s (SIGKILL after that). Returns the exit status; an error if
    /// the process had to be killed.
    pub fn stop(&mut self) -> Result<ExitStatus, Box<dyn std::error::Error>> {
        self.sigterm()?;
        if let Some(status) = self.wait_exit(STOP_TIMEOUT)? {
            return Ok(status);
        }
        self.kill_now();
        Err(format!(
            "server did not exit within {STOP_TIMEOUT:?} of SIGTERM; log tail:\n{}",
            self.log_tail(3000)
        )
        .into())
    }

    /// Stops the server (SIGTERM, wait) and starts it again on the same data dir with the same
    /// arguments. The ports change.
    pub fn restart(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let status = self.stop()?;
        if !status.success() {
            return Err(format!(
                "server exited with {status} on SIGTERM; log tail:\n{}",
                self.log_tail(3000)
            )
            .into());
        }
        self.spawn()
    }

    /// Stops the server (SIGTERM, wait) and starts it again on the same data dir with the
    /// default arguments followed by `extra` instead of the earlier ones. The ports change.
    pub fn restart_with(&mut self, extra: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
        self.extra_args = extra.iter().map(|s| s.to_string()).collect();
        self.restart()
    }

    /// Simulates a crash: SIGKILL, reap, and start again on the same data dir (new ports).
    pub fn crash_restart(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        if self.child.is_none() {
            return Err("crash_restart: the server is not running".into());
        }
        self.kill_now();
        self.spawn()
    }

    /// Starts the server again on the same data dir after it has exited (e.g. after a test
    /// sent SIGTERM itself and waited). New ports.
    pub fn respawn(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        if self.child.is_some() {
            return Err("respawn: the server is still running".into());
        }
        self.spawn()
    }

    /// Kills the server (SIGKILL) and reaps it; it stays down.
    pub fn kill(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        if self.child.is_none() {
            return Err("kill: the server is not running".into());
        }
        self.kill_now();
        Ok(())
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signalled = true;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `{"main_port": n, "mgmt_port": m}`; `None` until the file exists and parses.
fn read_ready_file(path: &Path) -> Option<(u16, u16)> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let main = u16::try_from(v.get("main_port")?.as_u64()?).ok()?;
    let mgmt = u16::try_from(v.get("mgmt_port")?.as_u64()?).ok()?;
    Some((main, mgmt))
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        // A server that died on its own while the test ran is a failure of the test.
        let mut died_early = None;
        if let Some(child) = self.child.as_mut() {
            if !self.signalled {
                if let Ok(Some(status)) = child.try_wait() {
                    died_early = Some(status);
                    self.child = None;
                }
            }
        }
        if self.child.is_some() {
            let _ = self.sigterm();
            match self.wait_exit(STOP_TIMEOUT) {
                Ok(Some(_)) => {}
                _ => self.kill_now(),
            }
        }
        // Always written: the test harness shows captured output only for failing tests, and a
        // test that fails by returning an error cannot be told apart from a passing one here.
        eprintln!(
            "---- server log tail ({}) ----\n{}\n---- end of server log ----",
            self.log_path().display(),
            self.log_tail(6000)
        );
        if let Some(status) = died_early {
            if !panicking {
                panic!("the server process exited on its own during the test with {status}");
            }
        }
    }
}

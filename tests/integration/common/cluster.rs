//! Several relay nodes of one deployment on loopback: a `redis-server` of the test's own
//! (`Redis`, on a kernel-chosen free port, no persistence), and relays that share one leased
//! keyspace on the CQL node, that Redis and one blob directory (`Deployment`). Dropping either
//! stops its processes. A `RedisProxy` stands between one relay and that Redis, so a test can
//! cut that relay's link alone.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::server::{TestServer, TestStore};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One `redis-server` process.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts one on a free loopback port and waits until it answers.
    pub fn start() -> Res<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut redis = Redis {
            child: None,
            port,
            dir: tempfile::Builder::new().prefix("obscura-redis-").tempdir()?,
        };
        redis.spawn()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> Res<()> {
        let log = std::fs::File::create(self.dir.path().join("redis.log"))?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start redis-server (apt-get install redis-server): {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kills it (SIGKILL: everything it held is gone).
    pub fn kill(&mut self) -> Res<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> Res<()> {
        self.kill()?;
        self.spawn()
    }

    /// Starts it again on the same port after a `kill` (an outage of the caller's length).
    pub fn respawn(&mut self) -> Res<()> {
        if self.child.is_some() {
            return Err("respawn: redis-server is still running".into());
        }
        self.spawn()
    }

    /// The process id of the running redis-server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Relays of one deployment. The first holds the keyspace's lease; every relay is started with
/// the same store, Redis and blob directory.
pub struct Deployment {
    pub nodes: Vec<TestServer>,
    // Declared after the nodes: dropped once they have stopped.
    pub redis: Redis,
    blobs: tempfile::TempDir,
}

impl Deployment {
    /// `n` relays, each with `extra` after the deployment's own flags.
    pub fn start(n: usize, extra: &[&str]) -> Res<Self> {
        let redis = Redis::start()?;
        let blobs = tempfile::Builder::new().prefix("obscura-blobs-").tempdir()?;
        let mut deployment = Deployment {
            nodes: Vec::with_capacity(n),
            redis,
            blobs,
        };
        let args = deployment.node_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let first = TestServer::start_on(TestStore::Scylla, &args)?;
        deployment.nodes.push(first);
        for _ in 1..n {
            let node = TestServer::start_beside(&deployment.nodes[0], &args)?;
            deployment.nodes.push(node);
        }
        Ok(deployment)
    }

    /// Starts one more relay of the deployment, with `extra` after the deployment's flags (a
    /// later flag wins: `--pubsub-url` through a `RedisProxy`, say).
    pub fn add_node(&mut self, extra: &[&str]) -> Res<()> {
        self.add_node_from(Path::new(env!("CARGO_BIN_EXE_obscura-relay")), extra)
    }

    /// As [`Deployment::add_node`], running `binary` (another release: a rolling deploy).
    pub fn add_node_from(&mut self, binary: &Path, extra: &[&str]) -> Res<()> {
        let args = self.node_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = TestServer::start_beside_from(&self.nodes[0], binary, &args)?;
        self.nodes.push(node);
        Ok(())
    }

    /// The flags every relay of this deployment gets.
    pub fn node_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--pubsub-url".to_string(),
            self.redis.url(),
            "--pubsub-min-backoff-secs".to_string(),
            "1".to_string(),
            "--pubsub-max-backoff-secs".to_string(),
            "1".to_string(),
            "--storage-local-dir".to_string(),
            self.blob_dir().display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// The blob directory every relay shares.
    pub fn blob_dir(&self) -> PathBuf {
        self.blobs.path().to_path_buf()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i]
    }
}

/// A Cassandra cluster of its own: `n` nodes on 127.0.0.1..n, one port, started one after
/// another from `../shared/cassandra` (about 17 s for three). Dropping it stops every node.
pub struct CqlCluster {
    cassandra: PathBuf,
    dir: tempfile::TempDir,
    pids: Vec<Option<u32>>,
    pub port: u16,
}

impl CqlCluster {
    /// Starts `n` nodes on `port` (every node of one cluster needs the same port).
    pub fn start(n: usize, port: u16) -> Res<Self> {
        let cassandra = super::cql_node::cassandra_dir()
            .ok_or("a Cassandra cluster needs ../shared/cassandra (or OBSCURA_TEST_CASSANDRA_DIR)")?;
        let mut cluster = CqlCluster {
            cassandra,
            dir: tempfile::Builder::new().prefix("obscura-cql-cluster-").tempdir()?,
            pids: Vec::with_capacity(n),
            port,
        };
        for i in 1..=n {
            let pid = cluster.start_node(i)?;
            cluster.pids.push(pid);
        }
        Ok(cluster)
    }

    /// Runs `start-node` for node `i` (1-based; its data dir is reused on a restart): its pid.
    fn start_node(&self, i: usize) -> Res<Option<u32>> {
        let out = Command::new(self.cassandra.join("start-node"))
            .arg("--dir")
            .arg(self.node_dir(i))
            .args(["--address", &format!("127.0.0.{i}"), "--seeds", "127.0.0.1"])
            .args(["--port", &self.port.to_string(), "--heap", "512M"])
            .output()?;
        if !out.status.success() {
            return Err(format!("node {i} did not start: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.split_whitespace().next().and_then(|p| p.parse().ok()))
    }

    /// Starts node `i` (1-based) again on its data after a [`CqlCluster::kill`]; returns once
    /// it accepts CQL. Its pid.
    pub fn restart(&mut self, i: usize) -> Res<u32> {
        if self.pids[i - 1].is_some() {
            return Err(format!("node {i} is still running").into());
        }
        let pid = self.start_node(i)?.ok_or("start-node printed no pid")?;
        self.pids[i - 1] = Some(pid);
        Ok(pid)
    }

    /// The pid of node `i` (1-based), if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.pids[i - 1]
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}"))
    }

    /// `127.0.0.1:<port>,…` for `--scylla-nodes`.
    pub fn contact_points(&self) -> String {
        (1..=self.pids.len())
            .map(|i| format!("127.0.0.{i}:{}", self.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A relay's store flags for keyspace `keyspace` on this cluster: replication factor 3,
    /// LOCAL_QUORUM, the schema created at start.
    pub fn store_args(&self, keyspace: &str) -> Vec<String> {
        let nodes = self.contact_points();
        [
            "--store",
            "scylla",
            "--scylla-nodes",
            &nodes,
            "--scylla-keyspace",
            keyspace,
            "--scylla-replication-factor",
            "3",
            "--scylla-consistency",
            "LOCAL_QUORUM",
            "--scylla-create-schema",
            "true",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Kills node `i` (1-based) with SIGKILL.
    pub fn kill(&mut self, i: usize) -> Res<()> {
        let pid = self.pids[i - 1].take().ok_or("node not running")?;
        Command::new("kill").args(["-9", &pid.to_string()]).status()?;
        Ok(())
    }
}

impl Drop for CqlCluster {
    fn drop(&mut self) {
        let stops: Vec<_> = (1..=self.pids.len())
            .filter(|i| self.pids[i - 1].is_some())
            .filter_map(|i| {
                Command::new(self.cassandra.join("stop-node"))
                    .arg(self.node_dir(i))
                    .spawn()
                    .ok()
            })
            .collect();
        for mut stop in stops {
            let _ = stop.wait();
        }
    }
}

/// A loopback TCP proxy to a Redis: while it is cut, every connection through it is closed and
/// new ones are closed at once, so the relay behind it loses its link (publishing and
/// subscription) while the others keep theirs. Dropping it stops it.
pub struct RedisProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl RedisProxy {
    /// Starts one in front of the Redis on `redis_port`.
    pub fn start(redis_port: u16) -> Res<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let proxy = RedisProxy {
            port: listener.local_addr()?.port(),
            cut: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        let (cut, stop, open) = (proxy.cut.clone(), proxy.stop.clone(), proxy.open.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) if !cut.load(Ordering::Acquire) => {
                        let _ = forward(client, redis_port, &open);
                    }
                    Ok((client, _)) => drop(client.shutdown(Shutdown::Both)),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(proxy)
    }

    /// `redis://127.0.0.1:<port>` through the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every connection through it and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::Release);
    }
}

/// Copies bytes both ways between `client` and a new connection to Redis, on two threads.
fn forward(client: TcpStream, redis_port: u16, open: &Mutex<Vec<TcpStream>>) -> Res<()> {
    client.set_nonblocking(false)?;
    let upstream = TcpStream::connect(("127.0.0.1", redis_port))?;
    {
        let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
        open.push(client.try_clone()?);
        open.push(upstream.try_clone()?);
    }
    for (mut from, mut to) in [(client.try_clone()?, upstream.try_clone()?), (upstream, client)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
    Ok(())
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.cut();
    }
}

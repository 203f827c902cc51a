//! The real run: three Cassandra nodes (replication factor 3, LOCAL_QUORUM), one
//! redis-server, three relays on one keyspace (one under libfaketime), the workload's clients
//! on threads, and the nemesis on this thread following the seed's schedule. Afterwards the
//! faults stop, the receivers get what is still queued, and the checker reads the history.

use std::collections::HashSet;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::checker::{check, render};
use crate::common::cluster::{CqlCluster, Redis};
use crate::common::TestServer;
use crate::history::{FaultEvent, History, Ms};
use crate::schedule::{draw, Fault, Schedule, Skew};
use crate::workload::{self, Users};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

pub const RELAYS: usize = 3;
const CQL_NODES: usize = 3;
/// Native port of the nemesis's Cassandra nodes (storage 17600, JMX 17799…): clear of the
/// shared test node (19342) and of the integration suite's cluster (19442).
const CQL_PORT: u16 = 19_642;
const KEYSPACE: &str = "obscura_nemesis";
/// The clock skew between relays the ordering check allows, ms (the skewed relay's offset).
pub const SKEW_BOUND_MS: Ms = 2_000;
/// Access-token lifetime of the run (longer than any run); a token's `exp` less this is when
/// its relay issued it, by its own clock.
const TOKEN_TTL_SECS: i64 = 86_400;
/// How long the receivers get, once the faults stop, to receive everything promised.
const SETTLE: Duration = Duration::from_secs(60);

/// The run's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub seed: u64,
    pub secs: u64,
    /// Size of the skewed relay's clock offset, s (its sign comes from the seed); 0: none.
    pub skew_secs: i64,
    /// Period of every periodic job of the relays (the retention sweep among them), s.
    pub job_secs: u64,
}

/// What every client thread shares: where the relays listen, the stop flags and the history.
pub struct Shared {
    t0: Instant,
    ports: Mutex<Vec<Option<u16>>>,
    pub stop_load: AtomicBool,
    pub stop_receivers: AtomicBool,
    history: Mutex<History>,
}

impl Shared {
    /// Ms since the run started.
    pub fn now(&self) -> Ms {
        self.t0.elapsed().as_millis() as Ms
    }

    /// The main port of relay `i`, while it is up.
    pub fn port(&self, i: usize) -> Option<u16> {
        lock(&self.ports)[i]
    }

    fn set_port(&self, i: usize, port: Option<u16>) {
        lock(&self.ports)[i] = port;
    }

    /// The relays that are up.
    pub fn up(&self) -> Vec<usize> {
        (0..RELAYS).filter(|&i| self.port(i).is_some()).collect()
    }

    pub fn record(&self, f: impl FnOnce(&mut History)) {
        f(&mut lock(&self.history));
    }

    pub fn stopped(&self) -> bool {
        self.stop_load.load(Ordering::Acquire)
    }
}

/// Locks `m`, ignoring poisoning (a panicked client thread leaves valid data).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The processes of the run. Dropped relays first, then Redis, then Cassandra.
struct Cluster {
    relays: Vec<TestServer>,
    redis: Redis,
    db: CqlCluster,
    _blobs: tempfile::TempDir,
}

/// Runs the nemesis for `settings`: Ok if the checker found nothing.
pub fn run(settings: Settings) -> Res<()> {
    let mut schedule = draw(settings.seed, RELAYS, CQL_NODES, settings.secs);
    schedule.skew.offset_secs = schedule.skew.offset_secs.signum() * settings.skew_secs;
    println!("nemesis: seed {} for {} s", settings.seed, settings.secs);
    println!(
        "nemesis: clock skew: relay {} at {:+} s",
        schedule.skew.relay, schedule.skew.offset_secs
    );
    let mut cluster = start_cluster(&schedule.skew, settings.job_secs)?;
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        ports: Mutex::new(cluster.relays.iter().map(|r| Some(r.main_port)).collect()),
        stop_load: AtomicBool::new(false),
        stop_receivers: AtomicBool::new(false),
        history: Mutex::new(History::default()),
    });
    let skew_event = measure_skew(&cluster, &shared, &schedule.skew)?;
    println!("nemesis: {}", skew_event.detail);
    shared.record(|h| h.faults.push(skew_event));
    let users = Users::create(&cluster.relays[0].client())?;
    let (load, receivers) = workload::start(&shared, &users, settings.seed);
    nemesis(&mut cluster, &shared, &schedule, Duration::from_secs(settings.secs));
    shared.stop_load.store(true, Ordering::Release);
    join(load);
    settle(&shared);
    shared.stop_receivers.store(true, Ordering::Release);
    join(receivers);
    let drain_on = (schedule.skew.relay + 1) % RELAYS;
    if let Err(e) = workload::final_drain(&shared, &users, drain_on) {
        println!("nemesis: the final drain failed: {e}");
    }
    let history = std::mem::take(&mut *lock(&shared.history));
    verdict(&settings, &schedule, &history)
}

fn join(threads: Vec<JoinHandle<()>>) {
    for t in threads {
        if t.join().is_err() {
            eprintln!("nemesis: a client thread panicked");
        }
    }
}

/// Checks `history`, prints the report and writes the whole of it next to the test binary's
/// temp files; an error if there is a violation or the workload did not run.
fn verdict(settings: &Settings, schedule: &Schedule, history: &History) -> Res<()> {
    let report = check(history, SKEW_BOUND_MS);
    let mut text = format!(
        "seed {} ({} s)\nfault schedule (as run):\n",
        settings.seed, settings.secs
    );
    for f in &history.faults {
        text += &format!(
            "  {:>7} ms .. {:>7} ms  {}{}\n",
            f.at,
            f.until,
            f.detail,
            if f.verified { "" } else { "  [NOT VERIFIED]" }
        );
    }
    text += &render(&report);
    println!("{text}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("nemesis-{}.txt", settings.seed));
    let mut all = text.clone();
    all += &format!("planned: {:#?}\nall violations:\n", schedule.faults);
    for v in &report.violations {
        all += &format!("  {v}\n");
    }
    if std::fs::write(&path, all).is_ok() {
        println!("nemesis: report written to {}", path.display());
    }
    write_history(settings.seed, history);
    let f = &report.figures;
    if let Some(v) = report.violations.first() {
        return Err(format!(
            "seed {}: {} violations; first: {v}",
            settings.seed,
            report.violations.len()
        )
        .into());
    }
    if f.answered == 0 || f.delivered == 0 || f.handouts == 0 || f.tickets_opened == 0 {
        return Err(format!("seed {}: the workload did not run: {f:?}", settings.seed).into());
    }
    Ok(())
}

/// Writes the whole history, one record a line, beside the report (for analysis).
fn write_history(seed: u64, history: &History) {
    let mut text = String::new();
    for s in &history.submissions {
        text += &format!("{s:?}\n");
    }
    for d in &history.deliveries {
        text += &format!("{d:?}\n");
    }
    for h in &history.handouts {
        text += &format!("{h:?}\n");
    }
    for r in &history.redemptions {
        text += &format!("{r:?}\n");
    }
    for f in &history.faults {
        text += &format!("{f:?}\n");
    }
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("nemesis-{seed}-history.txt"));
    if std::fs::write(&path, text).is_ok() {
        println!("nemesis: history written to {}", path.display());
    }
}

/// Waits until every promised payload was delivered, or `SETTLE` passes.
fn settle(shared: &Shared) {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        let missing = {
            let h = lock(&shared.history);
            let got: HashSet<(usize, &str)> = h.deliveries.iter().map(|d| (d.device, d.payload.as_str())).collect();
            h.submissions
                .iter()
                .flat_map(|s| s.promised())
                .filter(|(d, p)| !got.contains(&(*d, p.as_str())))
                .count()
        };
        if missing == 0 {
            println!(
                "nemesis: everything promised was delivered by {} ms (run time)",
                shared.now()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("nemesis: gave up waiting for deliveries after {SETTLE:?}");
}

/// The flags of every relay: the cluster's store, Redis, blobs, and every periodic job at a
/// `job_secs` period; limits that keep the contract's allowed drops out of the run.
fn relay_args(db: &CqlCluster, redis: &Redis, blobs: &std::path::Path, job_secs: u64) -> Vec<String> {
    let mut args = db.store_args(KEYSPACE);
    args.extend(
        [
            "--pubsub-url",
            &redis.url(),
            "--pubsub-min-backoff-secs",
            "1",
            "--pubsub-max-backoff-secs",
            "1",
            "--storage-local-dir",
            &blobs.display().to_string(),
            "--messaging-inbox-max-size",
            "100000",
            "--auth-token-ttl-secs",
            &TOKEN_TTL_SECS.to_string(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for job in [
        "--messaging-cleanup-interval-secs",
        "--auth-revocation-sync-interval-secs",
        "--auth-refresh-token-cleanup-interval-secs",
        "--notifications-worker-interval-secs",
        "--notifications-invalid-token-cleanup-interval-secs",
        "--attachment-cleanup-interval-secs",
        "--backup-cleanup-interval-secs",
    ] {
        args.extend([job.to_string(), job_secs.to_string()]);
    }
    args
}

/// libfaketime's preload library (the multi-threaded build where there is one).
fn libfaketime() -> Res<String> {
    for lib in ["libfaketimeMT.so.1", "libfaketime.so.1"] {
        for dir in [
            "/usr/lib/x86_64-linux-gnu/faketime",
            "/usr/lib/aarch64-linux-gnu/faketime",
            "/usr/lib/faketime",
        ] {
            let path = format!("{dir}/{lib}");
            if std::path::Path::new(&path).exists() {
                return Ok(path);
            }
        }
    }
    Err("libfaketime not found (apt-get install faketime)".into())
}

fn start_cluster(skew: &Skew, job_secs: u64) -> Res<Cluster> {
    let started = Instant::now();
    let db = CqlCluster::start(CQL_NODES, CQL_PORT)?;
    println!("nemesis: {CQL_NODES} Cassandra nodes up in {:?}", started.elapsed());
    let redis = Redis::start()?;
    let blobs = tempfile::Builder::new().prefix("obscura-nemesis-blobs-").tempdir()?;
    let args = relay_args(&db, &redis, blobs.path(), job_secs);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let faketime = libfaketime()?;
    let offset = format!("{:+}s", skew.offset_secs);
    let mut relays = Vec::with_capacity(RELAYS);
    for i in 0..RELAYS {
        let env: Vec<(&str, &str)> = if i == skew.relay && skew.offset_secs != 0 {
            vec![
                ("LD_PRELOAD", faketime.as_str()),
                ("FAKETIME", offset.as_str()),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ]
        } else {
            Vec::new()
        };
        relays.push(TestServer::start_with_env(&args, &env)?);
    }
    println!("nemesis: cluster up in {:?}", started.elapsed());
    Ok(Cluster {
        relays,
        redis,
        db,
        _blobs: blobs,
    })
}

/// Measures each relay's wall clock from a token it issues (`exp` less the token lifetime, 1 s
/// resolution): the
/// skewed relay must be off by about its offset, the others by about nothing.
fn measure_skew(cluster: &Cluster, shared: &Shared, skew: &Skew) -> Res<FaultEvent> {
    let at = shared.now();
    let mut offsets = Vec::new();
    for (i, relay) in cluster.relays.iter().enumerate() {
        let before = crate::common::now_secs();
        let resp = relay
            .client()
            .register(&format!("nemclock{i}"), crate::common::PASSWORD)?;
        let after = crate::common::now_secs();
        let token = resp.json()?["token"].as_str().ok_or("no token")?.to_string();
        let exp = crate::common::jwt::claims(&token)?["exp"].as_i64().ok_or("no exp")?;
        let iat = exp - TOKEN_TTL_SECS;
        offsets.push(if iat < before {
            iat - before
        } else {
            (iat - after).max(0)
        });
    }
    let verified = offsets.iter().enumerate().all(|(i, &o)| {
        let expected = if i == skew.relay { skew.offset_secs } else { 0 };
        (o - expected).abs() <= 1
    });
    Ok(FaultEvent {
        at,
        until: at,
        kind: "clock-skew",
        detail: format!(
            "clock-skew relay {} at {:+} s for the whole run (measured offsets from token exp, s: {offsets:?})",
            skew.relay, skew.offset_secs
        ),
        verified,
    })
}

/// Injects the schedule's faults one after another until `secs` have passed.
fn nemesis(cluster: &mut Cluster, shared: &Shared, schedule: &Schedule, secs: Duration) {
    let deadline = Instant::now() + secs;
    for planned in &schedule.faults {
        let gap = Duration::from_secs(planned.gap_secs);
        if Instant::now() + gap >= deadline {
            break;
        }
        std::thread::sleep(gap);
        let at = shared.now();
        println!("nemesis: {at:>7} ms  {}", planned.fault);
        let (detail, verified) = match inject(cluster, shared, &planned.fault) {
            Ok(v) => v,
            Err(e) => (format!("failed: {e}"), false),
        };
        let event = FaultEvent {
            at,
            until: shared.now(),
            kind: planned.fault.kind(),
            detail: format!("{}: {detail}", planned.fault),
            verified,
        };
        shared.record(|h| h.faults.push(event));
    }
    let left = deadline.saturating_duration_since(Instant::now());
    std::thread::sleep(left);
}

/// Whether process `pid` is gone (or a zombie).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

fn sleep_secs(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

/// Injects one fault and heals it: what was seen, and whether it was verified.
fn inject(cluster: &mut Cluster, shared: &Shared, fault: &Fault) -> Res<(String, bool)> {
    match *fault {
        Fault::RelayKill { relay, down_secs } => {
            let r = &mut cluster.relays[relay];
            let old = r.pid().ok_or("relay not running")?;
            r.kill()?;
            shared.set_port(relay, None);
            let killed = wait_gone(old);
            sleep_secs(down_secs);
            r.respawn()?;
            shared.set_port(relay, Some(r.main_port));
            Ok((
                format!("pid {old} SIGKILLed (gone: {killed}), restarted as pid {:?}", r.pid()),
                killed,
            ))
        }
        Fault::RelayPause { relay, secs } => {
            let r = &mut cluster.relays[relay];
            r.pause()?;
            std::thread::sleep(Duration::from_millis(200));
            let stopped = r.proc_state();
            sleep_secs(secs);
            r.resume()?;
            std::thread::sleep(Duration::from_millis(200));
            let resumed = r.proc_state();
            let ok = stopped == Some('T') && resumed.is_some_and(|s| s != 'T');
            Ok((
                format!("state after SIGSTOP {stopped:?}, after SIGCONT {resumed:?}"),
                ok,
            ))
        }
        Fault::RelayDrain { relay, down_secs } => {
            let r = &mut cluster.relays[relay];
            let status = r.stop();
            shared.set_port(relay, None);
            sleep_secs(down_secs);
            r.respawn()?;
            shared.set_port(relay, Some(r.main_port));
            let ok = status.as_ref().is_ok_and(|s| s.success());
            Ok((format!("SIGTERM exit {status:?}"), ok))
        }
        Fault::RedisRestart { down_secs } => redis_restart(cluster, down_secs),
        Fault::CassandraKill { node, down_secs } => cassandra_kill(cluster, node, down_secs),
    }
}

fn redis_restart(cluster: &mut Cluster, down_secs: u64) -> Res<(String, bool)> {
    let port = cluster.redis.port;
    cluster.redis.kill()?;
    let down = TcpStream::connect(("127.0.0.1", port)).is_err();
    sleep_secs(down_secs);
    cluster.redis.respawn()?;
    let started = Instant::now();
    let mut ready = false;
    while !ready && started.elapsed() < Duration::from_secs(20) {
        ready = cluster.relays.iter().all(|r| {
            r.mgmt_client()
                .get("/readyz")
                .send()
                .is_ok_and(|resp| resp.status == 200)
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((
        format!(
            "port closed while down: {down}; every relay ready again after {:?}: {ready}",
            started.elapsed()
        ),
        down && ready,
    ))
}

fn cassandra_kill(cluster: &mut Cluster, node: usize, down_secs: u64) -> Res<(String, bool)> {
    let old = cluster.db.pid(node).ok_or("Cassandra node not running")?;
    cluster.db.kill(node)?;
    let killed = wait_gone(old);
    // A JVM's main thread shows as a zombie before the others are gone: wait for the port.
    let addr = format!("127.0.0.{node}:{}", cluster.db.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = TcpStream::connect(&addr).is_err();
    while !closed && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        closed = TcpStream::connect(&addr).is_err();
    }
    sleep_secs(down_secs);
    let started = Instant::now();
    let new = cluster.db.restart(node)?;
    Ok((
        format!(
            "pid {old} SIGKILLed (gone: {killed}, CQL port closed: {closed}); restarted as pid {new} in {:?}",
            started.elapsed()
        ),
        killed && closed,
    ))
}

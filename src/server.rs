//! Starting and stopping the whole server: bind the listeners ([`bind`]),
//! open the store, start the password workers and one thread per shard
//! ([`start`]), and on shutdown stop accepting, let in-flight requests
//! finish, flush the store and join every thread
//! ([`RunningServer::shutdown`]).
//!
//! Each shard gets its own state ([`ShardLocal`]: its gateway hub on the
//! mesh and the event bus over it) and serves the API; shard 0 also serves
//! the management port and runs the push worker and the clean-ups; every
//! shard sweeps the mailboxes it owns. The side runtime (object_store's
//! tokio) starts with the store.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

use crate::admin::readyz::Probes;
use crate::admin::service::AdminService;
use crate::api::routes::ROUTE_LABELS;
use crate::api::ApiService;
use crate::auth::passwords::Passwords;
use crate::auth::rate_limit::{Buckets, Rate, TierRates};
use crate::auth::signing_key::{self, SigningKeyError};
use crate::blob::{BlobError, Blobs};
use crate::config::Config;
use crate::gateway::cluster_bus::{Cluster, ClusterBus};
use crate::gateway::events::EventBus;
use crate::gateway::hub::{Hub, HubParts};
use crate::gateway::mesh_bus::MeshBus;
use crate::http::listener::{accept_loop, Serving};
use crate::http::HttpLimits;
use crate::limits;
use crate::metrics::Metrics;
use crate::node::cluster_inbox::ClusterInbox;
use crate::node::confirmations::Confirmations;
use crate::node::revocations::{self, Revocations};
use crate::node::{App, ShardLocal};
use crate::offload::side_runtime::SideRuntime;
use crate::offload::workers::WorkerPool;
use crate::proto::cluster::Channel;
use crate::pubsub::{self, Link, LinkOptions, PubSubError};
use crate::push::fcm::FcmSetupError;
use crate::push::worker::Pusher;
use crate::push::{self, Provider};
use crate::shard::mesh::{Job, Mesh};
use crate::shard::runtime::{self, ChosenDriver};
use crate::shard::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// The bound sockets: one main listener per shard (all on one port, with
/// `SO_REUSEPORT`) and the management listener.
pub struct Listeners {
    /// One per shard, all bound to the same address.
    pub main: Vec<StdListener>,
    /// The management port.
    pub mgmt: StdListener,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Binding, threads or the io driver failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The store could not be opened.
    #[error("opening the store failed: {0}")]
    Store(#[from] StoreError),
    /// FCM is configured but unusable.
    #[error("{0}")]
    Push(#[from] FcmSetupError),
    /// Blob storage could not be set up.
    #[error("opening blob storage failed: {0}")]
    Blobs(#[from] BlobError),
    /// `--pubsub-url` is unusable.
    #[error("{0}")]
    PubSub(#[from] PubSubError),
    /// No usable access-token secret.
    #[error("{0}")]
    SigningKey(#[from] SigningKeyError),
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> StartError {
    move |source| StartError::Io { context, source }
}

fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(limits::LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Binds the main port once per shard (the first bind picks the port when
/// it is 0; the others join it) and the management port.
pub fn bind(config: &Config) -> Result<Listeners, StartError> {
    let first = listen(SocketAddr::new(config.server_host, config.server_port), true)
        .map_err(io_err("binding the main port"))?;
    let addr = first.local_addr().map_err(io_err("reading the main port"))?;
    let mut main = vec![first];
    for _ in 1..config.shard_count() {
        main.push(listen(addr, true).map_err(io_err("binding a shard listener"))?);
    }
    let mgmt = listen(SocketAddr::new(config.server_host, config.server_mgmt_port), false)
        .map_err(io_err("binding the management port"))?;
    Ok(Listeners { main, mgmt })
}

/// A started server.
pub struct RunningServer {
    /// The main port.
    pub main_port: u16,
    /// The management port.
    pub mgmt_port: u16,
    mesh: Arc<Mesh<Hub>>,
    shards: Vec<JoinHandle<()>>,
    app: Arc<App>,
}

fn http_limits(config: &Config) -> HttpLimits {
    HttpLimits {
        header_bytes_max: config.http_header_bytes_max,
        headers_count_max: config.http_headers_count_max,
        head_timeout: Duration::from_millis(config.http_request_head_timeout_ms),
        keepalive_timeout: Duration::from_secs(config.http_keepalive_timeout_secs),
        write_timeout: config.global_timeout(),
    }
}

/// What the shards start with: the shared state, the push sender for
/// shard 0's worker, and the cluster state when there is a pub/sub link.
struct Opened {
    app: Arc<App>,
    pusher: Pusher,
    cluster: Option<Arc<Cluster>>,
}

/// The link to the other relay nodes, if `--pubsub-url` is set; events
/// from it go to the shards of `mesh`.
fn start_link(
    config: &Config,
    side: &SideRuntime,
    mesh: &Arc<Mesh<Hub>>,
    revocations: &Arc<Revocations>,
    store: &Arc<dyn Store>,
    confirmations: &Arc<Confirmations>,
) -> Result<Option<(Link, Arc<Cluster>)>, StartError> {
    let Some(url) = &config.pubsub_url else {
        return Ok(None);
    };
    let node = pubsub::new_node_id();
    let cluster = Cluster::new(mesh.clone()).map_err(io_err("starting the overflow thread"))?;
    let options = LinkOptions {
        url: url.clone(),
        node,
        min_backoff: Duration::from_secs(config.pubsub_min_backoff_secs),
        max_backoff: Duration::from_secs(config.pubsub_max_backoff_secs),
        channels: Channel::node_wide(node).iter().map(Channel::name).collect(),
    };
    let deliver = ClusterInbox {
        node,
        cluster: cluster.clone(),
        revocations: revocations.clone(),
        store: store.clone(),
        confirmations: confirmations.clone(),
        link: OnceLock::new(),
    };
    let deliver = Arc::new(deliver);
    let link = Link::start(&options, side.clone(), deliver.clone())?;
    let _ = deliver.link.set(link.clone());
    tracing::info!(node, "relaying events through pub/sub");
    Ok(Some((link, cluster)))
}

/// Opens the store, blob storage, the pub/sub link and the worker pools.
fn open_app(config: Config, mesh: &Arc<Mesh<Hub>>) -> Result<Opened, StartError> {
    // Before the store: a missing or weak secret stops the start at once.
    let tokens = signing_key::token_keys(&config)?;
    let store = crate::store::open(&config)?;
    let side = SideRuntime::start().map_err(io_err("starting the side runtime"))?;
    let revocations = Arc::new(Revocations::new(revocations::keep_ms(config.auth_token_ttl_secs)));
    let confirmations = Arc::new(Confirmations::default());
    let linked = start_link(&config, &side, mesh, &revocations, &store, &confirmations)?;
    let blobs = Blobs::open(&config, side)?;
    let pool = WorkerPool::start("password", config.password_worker_count(), limits::PASSWORD_QUEUE_DEPTH)
        .map_err(io_err("starting password workers"))?;
    let push_threads = config.notifications_worker_concurrency.min(limits::PUSH_THREADS_MAX);
    let pusher =
        Pusher::start(Provider::from_config(&config)?, push_threads).map_err(io_err("starting push workers"))?;
    let rates = TierRates {
        auth: Rate::new(config.auth_rate_limit_per_second, config.auth_rate_limit_burst),
        standard: Rate::new(config.rate_limit_per_second, config.rate_limit_burst),
        lookup: Rate::new(config.rate_limit_lookup_per_second, config.rate_limit_lookup_burst),
    };
    let buckets = Buckets::new(rates, config.rate_limit_clients_max);
    let (pubsub, cluster) = linked.unzip();
    let app = Arc::new(App {
        pubsub,
        buckets,
        tokens,
        passwords: Passwords::new(pool),
        revocations,
        confirmations,
        metrics: Metrics::new(config.shard_count(), &ROUTE_LABELS),
        store,
        blobs,
        config: Arc::new(config),
    });
    Ok(Opened { app, pusher, cluster })
}

/// Starts the store, the workers and the shards on `listeners`; returns once
/// every shard accepts connections.
pub fn start(config: Config, listeners: Listeners) -> Result<RunningServer, StartError> {
    let driver = runtime::choose_driver(config.io_driver).map_err(io_err("choosing the io driver"))?;
    let main_port = listeners
        .main
        .first()
        .and_then(|l| l.local_addr().ok())
        .map_or(0, |a| a.port());
    let mgmt_port = listeners
        .mgmt
        .local_addr()
        .map_err(io_err("reading the management port"))?
        .port();
    let shards = listeners.main.len();
    let started_ms = crate::util::time::now_micros() / 1000;
    let mesh = Mesh::<Hub>::new(shards, limits::MESH_QUEUE_DEPTH);
    let Opened { app, pusher, cluster } = open_app(config, &mesh)?;
    runtime::block_on(driver, crate::cleanup::revocations::load(&app))
        .map_err(io_err("loading token revocations"))??;
    let mut pusher = Some(pusher);
    tracing::info!(shards, driver = ?driver, store = ?app.config.store, data_dir = %app.config.data_dir.display(), durability = ?app.config.durability, "starting");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let cpus = crate::util::cpus::allowed_cpus();
    let mut mgmt = Some(listeners.mgmt);
    let mut handles = Vec::with_capacity(shards);
    let draining = Arc::new(AtomicUsize::new(shards));
    for (i, listener) in listeners.main.into_iter().enumerate() {
        let shard = ShardStart {
            id: i,
            cpu: cpus[i % cpus.len()],
            driver,
            listener,
            mgmt: mgmt.take(),
            pusher: pusher.take(),
            cluster: cluster.clone(),
            draining: draining.clone(),
            started_ms,
        };
        let (app, mesh, ready) = (app.clone(), mesh.clone(), ready_tx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("shard-{i}"))
            .spawn(move || shard.run(app, mesh, ready))
            .map_err(io_err("starting a shard thread"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shards {
        ready_rx.recv().map_err(|_| StartError::Io {
            context: "starting shards",
            source: io::Error::other("a shard failed to start"),
        })?;
    }
    tracing::info!(main_port, mgmt_port, "accepting connections");
    Ok(RunningServer {
        main_port,
        mgmt_port,
        mesh,
        shards: handles,
        app,
    })
}

/// Writes `{"main_port":..,"mgmt_port":..}` to `path` atomically.
pub fn write_ready_file(path: &Path, main_port: u16, mgmt_port: u16) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::json!({ "main_port": main_port, "mgmt_port": mgmt_port }).to_string(),
    )?;
    std::fs::rename(tmp, path)
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (up to
    /// `--server-shutdown-timeout-secs`), flushes the store and joins every
    /// thread.
    pub fn shutdown(self) -> Result<(), StoreError> {
        for shard in 0..self.mesh.shards() {
            let job: Job<Hub> = Box::new(|hub| hub.shutdown.trigger());
            self.mesh.push_blocking(shard, job);
        }
        for handle in self.shards {
            let _ = handle.join();
        }
        // Every shard has stopped, so no request is in flight: make every
        // acknowledged write durable. The store and worker threads are left
        // to the process exit; tasks a runtime left parked may still hold
        // handles to them, so waiting for them could wait forever.
        let flushed = self.app.store.flush();
        tracing::info!("stopped");
        flushed
    }
}

/// What one shard thread starts with.
struct ShardStart {
    id: usize,
    cpu: usize,
    driver: ChosenDriver,
    listener: StdListener,
    mgmt: Option<StdListener>,
    /// The push sender, for the worker on the shard that has `mgmt`.
    pusher: Option<Pusher>,
    /// The process's cluster state, with a pub/sub link.
    cluster: Option<Arc<Cluster>>,
    /// Shards still draining: a shard keeps serving its mesh inbox until
    /// this is zero, so the others' last calls to it (acks, presence) land.
    draining: Arc<AtomicUsize>,
    /// When the process started, ms since the epoch.
    started_ms: i64,
}

impl ShardStart {
    fn run(self, app: Arc<App>, mesh: Arc<Mesh<Hub>>, ready: std::sync::mpsc::Sender<()>) {
        runtime::pin_current_thread(self.cpu);
        let id = self.id;
        if let Err(e) = runtime::block_on(self.driver, self.serve(app, mesh, ready)) {
            tracing::error!(shard = id, error = %e, "shard runtime failed");
        }
    }

    async fn serve(self, app: Arc<App>, mesh: Arc<Mesh<Hub>>, ready: std::sync::mpsc::Sender<()>) {
        let config = app.config.clone();
        let local = shard_local(&app, self.id, &mesh, self.cluster.as_ref());
        let shutdown = local.shutdown().clone();
        monoio::spawn(crate::retention::sweep::run(local.clone()));
        let limits = Rc::new(http_limits(&config));
        let listener = match TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!(shard = self.id, error = %e, "listener setup failed"),
        };
        let admin_open = Arc::new(AtomicUsize::new(0));
        if let Some(mgmt) = self.mgmt {
            if let Err(e) = start_admin(mgmt, &app, limits.clone(), shutdown.clone(), admin_open.clone()) {
                return tracing::error!(error = %e, "management listener setup failed");
            }
            if let Some(pusher) = self.pusher {
                monoio::spawn(push::worker::run(app.clone(), pusher, shutdown.clone()));
            }
            crate::cleanup::spawn(&app, &shutdown, self.started_ms);
        }
        let open = app
            .shard_metrics(self.id)
            .map_or_else(|| Arc::new(AtomicUsize::new(0)), |m| m.open_connections.clone());
        let serving = Serving {
            service: Rc::new(ApiService::new(local)),
            limits,
            shutdown,
            open: open.clone(),
            open_max: config.http_connections_per_shard_max,
        };
        let _ = ready.send(());
        accept_loop(listener, serving).await;
        drain(
            &[open, admin_open],
            Duration::from_secs(config.server_shutdown_timeout_secs),
        )
        .await;
        self.draining.fetch_sub(1, Ordering::AcqRel);
        while self.draining.load(Ordering::Acquire) > 0 {
            monoio::time::sleep(Duration::from_millis(limits::SHUTDOWN_POLL_MS)).await;
        }
    }
}

/// Shard `me`'s state: its gateway hub (connected to the mesh, whose inbox
/// it now serves) and the event bus over it (relayed to the other nodes
/// when there is a pub/sub link).
fn shard_local(app: &Arc<App>, me: usize, mesh: &Arc<Mesh<Hub>>, cluster: Option<&Arc<Cluster>>) -> Rc<ShardLocal> {
    let hub = Rc::new(Hub::new(HubParts {
        me,
        mesh: mesh.clone(),
        shutdown: Shutdown::default(),
        store: app.store.clone(),
        config: app.config.clone(),
        metrics: app.metrics.clone(),
    }));
    let endpoint = mesh.connect(me, hub.clone());
    monoio::spawn(endpoint.clone().serve());
    let local = MeshBus::new(endpoint);
    let events: Rc<dyn EventBus> = match (cluster, &app.pubsub) {
        (Some(cluster), Some(link)) => Rc::new(ClusterBus::new(local, cluster.clone(), link.clone(), me)),
        _ => Rc::new(local),
    };
    Rc::new(ShardLocal::new(app.clone(), hub, events))
}

fn start_admin(
    mgmt: StdListener,
    app: &Arc<App>,
    limits: Rc<HttpLimits>,
    shutdown: Shutdown,
    open: Arc<AtomicUsize>,
) -> io::Result<()> {
    let listener = TcpListener::from_std(mgmt)?;
    let service = AdminService {
        probes: Probes {
            store: app.store.clone(),
            db_timeout: Duration::from_millis(app.config.health_db_timeout_ms),
            pubsub: app.pubsub.clone(),
            pubsub_timeout: Duration::from_millis(app.config.health_pubsub_timeout_ms),
        },
        metrics: app.metrics.clone(),
    };
    let serving = Serving {
        service: Rc::new(service),
        limits,
        shutdown,
        open,
        open_max: limits::ADMIN_CONNECTIONS_MAX,
    };
    monoio::spawn(accept_loop(listener, serving));
    Ok(())
}

/// Waits for open connections to finish, at most `grace`.
async fn drain(open: &[Arc<AtomicUsize>], grace: Duration) {
    let deadline = Instant::now() + grace;
    while open.iter().any(|o| o.load(Ordering::Relaxed) > 0) && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(limits::SHUTDOWN_POLL_MS)).await;
    }
}

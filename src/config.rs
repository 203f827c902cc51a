//! Configuration: every option is a flag and an `OBSCURA_*` environment
//! variable (a flag wins), parsed once into [`Config`], checked by
//! [`Config::validate`] and then shared read-only by every shard.
//!
//! Names and defaults follow the reference server (BEHAVIOR.md §14) where it
//! has the option, so an existing deployment switches by changing the binary.
//! Options of features that do not exist yet are not accepted.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::limits;
use crate::util::cidr::Cidr;

/// What a successful write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Durability {
    /// Every acknowledged write is fsynced: it survives power loss.
    Fsync,
    /// Writes reach the OS before the answer: they survive a crash of the
    /// process, not of the machine.
    Buffered,
}

/// Which io driver the shards run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoDriver {
    /// io_uring when the kernel allows it, else epoll (logged at start).
    Auto,
    /// io_uring only; start fails where it is blocked.
    Uring,
    /// epoll only (monoio's "legacy" driver).
    Epoll,
}

/// Where attachments and backups are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageBackend {
    /// The local filesystem (`--storage-local-dir`).
    Local,
    /// An S3 bucket (`--storage-bucket` and the other `--storage-*` options).
    S3,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The whole configuration of one server process.
#[derive(Debug, Clone, Parser)]
#[command(name = "obscura-relay", version, about, args_override_self = true)]
pub struct Config {
    /// A maintenance task instead of the server (see [`Command`]).
    #[command(subcommand)]
    pub command: Option<Command>,

    // ----- server -----
    /// Bind address of the main and management listeners.
    #[arg(long, env = "OBSCURA_SERVER_HOST", default_value = "0.0.0.0")]
    pub server_host: IpAddr,
    /// API port (0 picks a free port; see --ready-file).
    #[arg(long, env = "OBSCURA_SERVER_PORT", default_value_t = limits::SERVER_PORT)]
    pub server_port: u16,
    /// Management port: /livez, /readyz, /metrics.
    #[arg(long, env = "OBSCURA_SERVER_MGMT_PORT", default_value_t = limits::SERVER_MGMT_PORT)]
    pub server_mgmt_port: u16,
    /// Grace period for in-flight requests at shutdown, seconds.
    #[arg(long, env = "OBSCURA_SERVER_SHUTDOWN_TIMEOUT_SECS", default_value_t = limits::SERVER_SHUTDOWN_TIMEOUT_SECS)]
    pub server_shutdown_timeout_secs: u64,
    /// Standard route timeout (408), seconds: auth and standard tier routes.
    #[arg(long, env = "OBSCURA_SERVER_REQUEST_TIMEOUT_SECS", default_value_t = limits::SERVER_REQUEST_TIMEOUT_SECS)]
    pub server_request_timeout_secs: u64,
    /// Catch-all timeout of every route (408), seconds.
    #[arg(long, env = "OBSCURA_SERVER_GLOBAL_TIMEOUT_SECS", default_value_t = limits::SERVER_GLOBAL_TIMEOUT_SECS)]
    pub server_global_timeout_secs: u64,
    /// Comma-separated CIDRs whose X-Forwarded-For is believed.
    #[arg(
        long,
        env = "OBSCURA_SERVER_TRUSTED_PROXIES",
        value_delimiter = ',',
        default_value = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,127.0.0.1/32"
    )]
    pub trusted_proxies: Vec<Cidr>,
    /// Number of shards (one pinned runtime each); default: the CPUs this
    /// process may run on.
    #[arg(long, env = "OBSCURA_SHARDS")]
    pub shards: Option<usize>,
    /// io driver of the shards.
    #[arg(long, env = "OBSCURA_IO_DRIVER", value_enum, default_value_t = IoDriver::Auto)]
    pub io_driver: IoDriver,
    /// Once both listeners accept, write `{"main_port":..,"mgmt_port":..}` here.
    #[arg(long, env = "OBSCURA_READY_FILE")]
    pub ready_file: Option<PathBuf>,

    // ----- HTTP bounds -----
    /// Largest request head (request line + headers), bytes; 431 above.
    #[arg(long, env = "OBSCURA_HTTP_HEADER_BYTES_MAX", default_value_t = limits::HTTP_HEADER_BYTES_MAX)]
    pub http_header_bytes_max: usize,
    /// Most header lines in one request; 431 above.
    #[arg(long, env = "OBSCURA_HTTP_HEADERS_COUNT_MAX", default_value_t = limits::HTTP_HEADERS_COUNT_MAX)]
    pub http_headers_count_max: usize,
    /// Largest buffered body (JSON and protobuf routes), bytes; 413 above.
    #[arg(long, env = "OBSCURA_HTTP_BODY_BYTES_MAX", default_value_t = limits::HTTP_BODY_BYTES_MAX)]
    pub http_body_bytes_max: usize,
    /// Time a client has to send a complete request head, ms; 408 after.
    #[arg(long, env = "OBSCURA_HTTP_REQUEST_HEAD_TIMEOUT_MS", default_value_t = limits::HTTP_REQUEST_HEAD_TIMEOUT_MS)]
    pub http_request_head_timeout_ms: u64,
    /// An idle keep-alive connection is closed after this many seconds.
    #[arg(long, env = "OBSCURA_HTTP_KEEPALIVE_TIMEOUT_SECS", default_value_t = limits::HTTP_KEEPALIVE_TIMEOUT_SECS)]
    pub http_keepalive_timeout_secs: u64,
    /// Open connections per shard; further accepts wait until one closes.
    #[arg(long, env = "OBSCURA_HTTP_CONNECTIONS_PER_SHARD_MAX", default_value_t = limits::HTTP_CONNECTIONS_PER_SHARD_MAX)]
    pub http_connections_per_shard_max: usize,

    // ----- storage -----
    /// Directory of the embedded store (created on first start).
    #[arg(long, env = "OBSCURA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// What an acknowledged write survives.
    #[arg(long, env = "OBSCURA_DURABILITY", value_enum, default_value_t = Durability::Fsync)]
    pub durability: Durability,
    /// Store threads that serve reads.
    #[arg(long, env = "OBSCURA_STORE_READ_THREADS", default_value_t = limits::STORE_READ_THREADS)]
    pub store_read_threads: usize,
    /// Devices plus queued messages the store's writer keeps indexed in
    /// memory, per generation (at most twice this; about 100 bytes each).
    #[arg(long, env = "OBSCURA_STORE_MAILBOX_INDEX_MAX", default_value_t = limits::STORE_MAILBOX_INDEX_MAX)]
    pub store_mailbox_index_max: usize,
    /// Which store keeps the state: `embedded` (fjall in --data-dir) or
    /// `scylla` (a ScyllaDB or Cassandra cluster, the --scylla-* options).
    #[arg(long = "store", env = "OBSCURA_STORE", value_enum, default_value_t = StoreKind::Embedded, global = true)]
    pub store: StoreKind,
    /// The ScyllaDB store's options.
    #[command(flatten)]
    pub scylla: ScyllaConfig,

    // ----- attachments, backups and blob storage -----
    /// Object-key prefix of attachments.
    #[arg(long, env = "OBSCURA_ATTACHMENT_PREFIX", default_value = "attachments/")]
    pub attachment_prefix: String,
    /// Largest attachment, bytes; 413 above.
    #[arg(long, env = "OBSCURA_ATTACHMENT_MAX_SIZE_BYTES", default_value_t = limits::ATTACHMENT_BYTES_MAX)]
    pub attachment_max_size_bytes: u64,
    /// Smallest attachment, bytes; 400 below.
    #[arg(long, env = "OBSCURA_ATTACHMENT_MIN_SIZE_BYTES", default_value_t = limits::ATTACHMENT_MIN_BYTES)]
    pub attachment_min_size_bytes: u64,
    /// Attachment route timeout (408), seconds, body included.
    #[arg(long, env = "OBSCURA_ATTACHMENT_TIMEOUT_SECS", default_value_t = limits::ATTACHMENT_TIMEOUT_SECS)]
    pub attachment_timeout_secs: u64,
    /// Period of the expired-attachment clean-up, seconds.
    #[arg(long, env = "OBSCURA_ATTACHMENT_CLEANUP_INTERVAL_SECS", default_value_t = limits::ATTACHMENT_CLEANUP_INTERVAL_SECS)]
    pub attachment_cleanup_interval_secs: u64,
    /// Expired attachments deleted per batch of the clean-up.
    #[arg(long, env = "OBSCURA_ATTACHMENT_CLEANUP_BATCH_SIZE", default_value_t = limits::ATTACHMENT_CLEANUP_BATCH_COUNT)]
    pub attachment_cleanup_batch_size: usize,
    /// Object-key prefix of backups.
    #[arg(long, env = "OBSCURA_BACKUP_PREFIX", default_value = "backups/")]
    pub backup_prefix: String,
    /// Largest backup, bytes; 413 above.
    #[arg(long, env = "OBSCURA_BACKUP_MAX_SIZE_BYTES", default_value_t = limits::BACKUP_BYTES_MAX)]
    pub backup_max_size_bytes: u64,
    /// Smallest backup, bytes; 400 below.
    #[arg(long, env = "OBSCURA_BACKUP_MIN_SIZE_BYTES", default_value_t = limits::BACKUP_MIN_BYTES)]
    pub backup_min_size_bytes: u64,
    /// Backup route timeout (408), seconds, body included.
    #[arg(long, env = "OBSCURA_BACKUP_TIMEOUT_SECS", default_value_t = limits::BACKUP_TIMEOUT_SECS)]
    pub backup_timeout_secs: u64,
    /// Age after which an unfinished backup upload may be taken over or is
    /// reset by the clean-up, minutes.
    #[arg(long, env = "OBSCURA_BACKUP_STALE_THRESHOLD_MINS", default_value_t = limits::BACKUP_STALE_THRESHOLD_MINS)]
    pub backup_stale_threshold_mins: u64,
    /// Period of the stale-backup-upload clean-up, seconds.
    #[arg(long, env = "OBSCURA_BACKUP_CLEANUP_INTERVAL_SECS", default_value_t = limits::BACKUP_CLEANUP_INTERVAL_SECS)]
    pub backup_cleanup_interval_secs: u64,
    /// Where blobs live: `local` (a directory) or `s3`.
    #[arg(long, env = "OBSCURA_STORAGE_BACKEND", value_enum, default_value_t = StorageBackend::Local)]
    pub storage_backend: StorageBackend,
    /// Directory of the local backend; default: `<data-dir>/blobs`.
    #[arg(long, env = "OBSCURA_STORAGE_LOCAL_DIR")]
    pub storage_local_dir: Option<PathBuf>,
    /// S3 bucket.
    #[arg(long, env = "OBSCURA_STORAGE_BUCKET", default_value = "obscura-storage")]
    pub storage_bucket: String,
    /// S3 region.
    #[arg(long, env = "OBSCURA_STORAGE_REGION", default_value = "us-east-1")]
    pub storage_region: String,
    /// Custom S3 endpoint (MinIO, moto...), addressed path-style; `http://` is allowed.
    #[arg(long, env = "OBSCURA_STORAGE_ENDPOINT")]
    pub storage_endpoint: Option<String>,
    /// S3 access key (used only if the secret key is set too; else `AWS_*` variables).
    #[arg(long, env = "OBSCURA_STORAGE_ACCESS_KEY", hide_env_values = true)]
    pub storage_access_key: Option<String>,
    /// S3 secret key.
    #[arg(long, env = "OBSCURA_STORAGE_SECRET_KEY", hide_env_values = true)]
    pub storage_secret_key: Option<String>,
    /// Path-style bucket addressing on AWS (always so with --storage-endpoint).
    #[arg(long, env = "OBSCURA_STORAGE_FORCE_PATH_STYLE")]
    pub storage_force_path_style: bool,

    // ----- auth -----
    /// HS256 key of access tokens (its UTF-8 bytes): at least 32 bytes, no
    /// whitespace, not a placeholder; `openssl rand -hex 32` makes one.
    /// Unset with the embedded store: the key in `<data-dir>/jwt-secret`,
    /// made on the first start. Required with `--store scylla`, the same on
    /// every node.
    #[arg(long, env = "OBSCURA_AUTH_JWT_SECRET", hide_env_values = true)]
    pub auth_jwt_secret: Option<Secret>,
    /// Earlier access-token keys, comma-separated: tokens they signed are
    /// still accepted, new ones are signed with the current key (rotation;
    /// docs/OPERATIONS.md). Same rules as --auth-jwt-secret.
    #[arg(
        long,
        env = "OBSCURA_AUTH_JWT_PREVIOUS_SECRETS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub auth_jwt_previous_secrets: Vec<Secret>,
    /// Access-token lifetime, seconds.
    #[arg(long, env = "OBSCURA_AUTH_TOKEN_TTL_SECS", default_value_t = limits::AUTH_TOKEN_TTL_SECS)]
    pub auth_token_ttl_secs: u64,
    /// Refresh-token lifetime, days.
    #[arg(long, env = "OBSCURA_AUTH_REFRESH_TOKEN_TTL_DAYS", default_value_t = limits::AUTH_REFRESH_TOKEN_TTL_DAYS)]
    pub auth_refresh_token_ttl_days: u64,
    /// Period of the expired-refresh-token purge, seconds; 0 disables it.
    #[arg(
        long,
        env = "OBSCURA_AUTH_REFRESH_TOKEN_CLEANUP_INTERVAL_SECS",
        default_value_t = limits::AUTH_REFRESH_TOKEN_CLEANUP_INTERVAL_SECS
    )]
    pub auth_refresh_token_cleanup_interval_secs: u64,
    /// Period of the re-read of the store's token revocations, seconds: the
    /// longest a password change or deletion decided on another relay node
    /// may go unseen here when its event is lost.
    #[arg(
        long,
        env = "OBSCURA_AUTH_REVOCATION_SYNC_INTERVAL_SECS",
        default_value_t = limits::AUTH_REVOCATION_SYNC_INTERVAL_SECS
    )]
    pub auth_revocation_sync_interval_secs: u64,
    /// Devices per user (403 above).
    #[arg(long, env = "OBSCURA_AUTH_MAX_DEVICES_PER_USER", default_value_t = limits::DEVICES_PER_USER_MAX)]
    pub auth_max_devices_per_user: usize,
    /// Threads that hash passwords (argon2id); default: the CPU count.
    #[arg(long, env = "OBSCURA_PASSWORD_WORKERS")]
    pub password_workers: Option<usize>,
    /// Standard tier refill rate per client IP, tokens per second (0 = 1).
    #[arg(long, env = "OBSCURA_RATE_LIMIT_PER_SECOND", default_value_t = limits::RATE_LIMIT_PER_SECOND)]
    pub rate_limit_per_second: u32,
    /// Standard tier bucket capacity per client IP.
    #[arg(long, env = "OBSCURA_RATE_LIMIT_BURST", default_value_t = limits::RATE_LIMIT_BURST_TOKENS)]
    pub rate_limit_burst: u32,
    /// Auth tier refill rate per client IP, tokens per second (0 = 1).
    #[arg(long, env = "OBSCURA_RATE_LIMIT_AUTH_PER_SECOND", default_value_t = limits::AUTH_RATE_LIMIT_PER_SECOND)]
    pub auth_rate_limit_per_second: u32,
    /// Auth tier bucket capacity per client IP.
    #[arg(long, env = "OBSCURA_RATE_LIMIT_AUTH_BURST", default_value_t = limits::AUTH_RATE_LIMIT_BURST_TOKENS)]
    pub auth_rate_limit_burst: u32,
    /// Username lookup tier refill rate per client IP, tokens per second (0 = 1).
    #[arg(long, env = "OBSCURA_RATE_LIMIT_LOOKUP_PER_SECOND", default_value_t = limits::LOOKUP_RATE_LIMIT_PER_SECOND)]
    pub rate_limit_lookup_per_second: u32,
    /// Username lookup tier bucket capacity per client IP.
    #[arg(long, env = "OBSCURA_RATE_LIMIT_LOOKUP_BURST", default_value_t = limits::LOOKUP_RATE_LIMIT_BURST_TOKENS)]
    pub rate_limit_lookup_burst: u32,
    /// (Client IP, tier) pairs the rate limiter remembers, for the whole
    /// process (32 to 64 bytes of table each: twice as many 16-byte slots,
    /// rounded up to a power of two); beyond this a refilled bucket's slot
    /// is reused.
    #[arg(long, env = "OBSCURA_RATE_LIMIT_CLIENTS_MAX", default_value_t = limits::RATE_LIMIT_CLIENTS_MAX)]
    pub rate_limit_clients_max: usize,

    // ----- keys and messages -----
    /// One-time prekeys per device and per upload (400 above).
    #[arg(long = "messaging-pre-keys-max", env = "OBSCURA_PRE_KEYS_MAX", default_value_t = limits::PRE_KEYS_COUNT_MAX)]
    pub pre_keys_max: usize,
    /// One-time prekey low-water mark: strictly below it, devices are told.
    #[arg(
        long = "messaging-pre-key-refill-threshold",
        env = "OBSCURA_PRE_KEY_REFILL_THRESHOLD",
        default_value_t = limits::PRE_KEYS_LOW_COUNT
    )]
    pub pre_key_refill_threshold: usize,
    /// Lifetime of messages and attachments, days.
    #[arg(long, env = "OBSCURA_TTL_DAYS", default_value_t = limits::TTL_DAYS)]
    pub ttl_days: u64,
    /// Submissions per POST /v1/messages (413 above).
    #[arg(long, env = "OBSCURA_MESSAGING_SEND_BATCH_LIMIT", default_value_t = limits::SEND_SUBMISSIONS_MAX)]
    pub messaging_send_batch_limit: usize,
    /// How long a POST /v1/messages answer is replayed for its Idempotency-Key, seconds.
    #[arg(long, env = "OBSCURA_MESSAGING_IDEMPOTENCY_TTL_SECS", default_value_t = limits::IDEMPOTENCY_TTL_SECS)]
    pub messaging_idempotency_ttl_secs: u64,
    /// Messages kept per device by the retention sweep (oldest dropped first).
    #[arg(long, env = "OBSCURA_MESSAGING_INBOX_MAX_SIZE", default_value_t = limits::INBOX_MESSAGES_MAX)]
    pub messaging_inbox_max_size: usize,
    /// Period of the retention sweep (expiry and inbox limit), seconds.
    #[arg(long, env = "OBSCURA_MESSAGING_CLEANUP_INTERVAL_SECS", default_value_t = limits::MESSAGING_CLEANUP_INTERVAL_SECS)]
    pub messaging_cleanup_interval_secs: u64,

    // ----- gateway -----
    /// Lifetime of a gateway ticket, seconds.
    #[arg(long, env = "OBSCURA_WS_TICKET_TTL_SECS", default_value_t = limits::WS_TICKET_TTL_SECS)]
    pub ws_ticket_ttl_secs: u64,
    /// Encoded frames queued per socket before the delivery pump waits.
    #[arg(long, env = "OBSCURA_WS_OUTBOUND_BUFFER_SIZE", default_value_t = limits::WS_OUTBOUND_FRAMES_MAX)]
    pub ws_outbound_buffer_size: usize,
    /// Ack ids waiting to be applied per socket; beyond it the socket is not
    /// read until a batch is applied (none are dropped).
    #[arg(long, env = "OBSCURA_WS_ACK_BUFFER_SIZE", default_value_t = limits::WS_ACK_BUFFER_IDS_MAX)]
    pub ws_ack_buffer_size: usize,
    /// Ack ids per delete batch.
    #[arg(long, env = "OBSCURA_WS_ACK_BATCH_SIZE", default_value_t = limits::WS_ACK_BATCH_IDS_MAX)]
    pub ws_ack_batch_size: usize,
    /// Longest delay of an ack batch, ms.
    #[arg(long, env = "OBSCURA_WS_ACK_FLUSH_INTERVAL_MS", default_value_t = limits::WS_ACK_FLUSH_INTERVAL_MS)]
    pub ws_ack_flush_interval_ms: u64,
    /// Server ping period, seconds (0 means 1).
    #[arg(long, env = "OBSCURA_WS_PING_INTERVAL_SECS", default_value_t = limits::WS_PING_INTERVAL_SECS)]
    pub ws_ping_interval_secs: u64,
    /// Silence tolerated beyond a ping interval before closing, seconds.
    #[arg(long, env = "OBSCURA_WS_PING_TIMEOUT_SECS", default_value_t = limits::WS_PING_TIMEOUT_SECS)]
    pub ws_ping_timeout_secs: u64,
    /// PreKeyStatus debounce after a low-prekey event, ms.
    #[arg(long, env = "OBSCURA_WS_PREKEY_DEBOUNCE_INTERVAL_MS", default_value_t = limits::WS_PREKEY_DEBOUNCE_INTERVAL_MS)]
    pub ws_prekey_debounce_interval_ms: u64,
    /// Messages per store fetch of the delivery pump.
    #[arg(long, env = "OBSCURA_WS_MESSAGE_FETCH_BATCH_SIZE", default_value_t = limits::WS_FETCH_MESSAGES_MAX)]
    pub ws_message_fetch_batch_size: usize,
    /// Shortest time between two frames of new messages to one socket, ms;
    /// messages arriving sooner wait and go together (0: each at once).
    /// Trades up to this much delivery delay, for devices that receive many
    /// messages a second, for fewer and fuller frames. At most 1000.
    #[arg(long, env = "OBSCURA_WS_DELIVERY_INTERVAL_MS", default_value_t = limits::WS_DELIVERY_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub ws_delivery_interval_ms: u64,
    /// Soft cap of one EnvelopeBatch frame, bytes (a larger envelope goes alone).
    #[arg(long, env = "OBSCURA_WS_MAX_BATCH_BYTES", default_value_t = limits::WS_MAX_BATCH_BYTES)]
    pub ws_max_batch_bytes: usize,
    /// A socket whose client does not take a frame within this long is closed, seconds.
    #[arg(long, env = "OBSCURA_WS_WRITE_TIMEOUT_SECS", default_value_t = limits::WS_WRITE_TIMEOUT_SECS)]
    pub ws_write_timeout_secs: u64,
    /// Largest inbound WebSocket message (clients only send acks), bytes;
    /// larger ends the session.
    #[arg(long, env = "OBSCURA_WS_MESSAGE_BYTES_MAX", default_value_t = limits::WS_MESSAGE_BYTES_MAX)]
    pub ws_message_bytes_max: usize,

    // ----- push notifications -----
    /// Delay before a wake-up push, seconds: events of a device within it
    /// share one push, and a session or an ack before it cancels it.
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_PUSH_DELAY_SECS", default_value_t = limits::PUSH_DELAY_SECS)]
    pub notifications_push_delay_secs: u64,
    /// Period of the push worker's poll for due jobs, seconds.
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_WORKER_INTERVAL_SECS", default_value_t = limits::PUSH_WORKER_INTERVAL_SECS)]
    pub notifications_worker_interval_secs: u64,
    /// Pushes in flight at most (= jobs leased per poll).
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_WORKER_CONCURRENCY", default_value_t = limits::PUSHES_IN_FLIGHT_MAX)]
    pub notifications_worker_concurrency: usize,
    /// Lease of a job being sent, seconds: a failed push is retried after it.
    #[arg(long, env = "OBSCURA_NOTIFICATIONS_VISIBILITY_TIMEOUT_SECS", default_value_t = limits::PUSH_VISIBILITY_TIMEOUT_SECS)]
    pub notifications_visibility_timeout_secs: u64,
    /// Dead push tokens are deleted at least this often, seconds.
    #[arg(
        long,
        env = "OBSCURA_NOTIFICATIONS_INVALID_TOKEN_CLEANUP_INTERVAL_SECS",
        default_value_t = limits::PUSH_DEAD_TOKEN_CLEANUP_INTERVAL_SECS
    )]
    pub notifications_invalid_token_cleanup_interval_secs: u64,
    /// Dead push tokens are deleted at once when this many are waiting.
    #[arg(
        long,
        env = "OBSCURA_NOTIFICATIONS_INVALID_TOKEN_CLEANUP_BATCH_SIZE",
        default_value_t = limits::PUSH_DEAD_TOKEN_BATCH_COUNT
    )]
    pub notifications_invalid_token_cleanup_batch_size: usize,
    /// Firebase project; pushes go through FCM only when this and
    /// --fcm-credentials-file are set (else they are logged and counted).
    #[arg(long, env = "OBSCURA_FCM_PROJECT_ID")]
    pub fcm_project_id: Option<String>,
    /// Service-account JSON file of the Firebase project.
    #[arg(long, env = "OBSCURA_FCM_CREDENTIALS_FILE")]
    pub fcm_credentials_file: Option<PathBuf>,
    /// TTL of an FCM message, seconds.
    #[arg(long, env = "OBSCURA_FCM_TTL_SECS", default_value_t = limits::FCM_TTL_SECS)]
    pub fcm_ttl_secs: u64,
    /// Base URL of the FCM HTTP v1 API (changed only to test against a
    /// stand-in).
    #[arg(long, env = "OBSCURA_FCM_API_URL", default_value = "https://fcm.googleapis.com")]
    pub fcm_api_url: String,
    /// OAuth2 token endpoint; the service-account file's `token_uri` wins
    /// when it has one.
    #[arg(
        long,
        env = "OBSCURA_FCM_TOKEN_URL",
        default_value = "https://oauth2.googleapis.com/token"
    )]
    pub fcm_token_url: String,
    /// Timeout of one call to FCM or its token endpoint, seconds.
    #[arg(long, env = "OBSCURA_FCM_TIMEOUT_SECS", default_value_t = limits::FCM_TIMEOUT_SECS)]
    pub fcm_timeout_secs: u64,

    // ----- cross-node events -----
    /// Redis of the deployment (`redis://host:port`): events reach sessions
    /// on other relay nodes, and jobs that must run once per deployment
    /// take a lease there. Unset: this node runs alone. Every node of a
    /// deployment gets the same URL (and the same store, blob store and
    /// `OBSCURA_AUTH_JWT_SECRET`).
    #[arg(long, env = "OBSCURA_PUBSUB_URL", hide_env_values = true)]
    pub pubsub_url: Option<String>,
    /// First wait before reconnecting to Redis, seconds (doubles up to the max).
    #[arg(long, env = "OBSCURA_PUBSUB_MIN_BACKOFF_SECS", default_value_t = limits::PUBSUB_MIN_BACKOFF_SECS)]
    pub pubsub_min_backoff_secs: u64,
    /// Longest wait between reconnects to Redis, seconds.
    #[arg(long, env = "OBSCURA_PUBSUB_MAX_BACKOFF_SECS", default_value_t = limits::PUBSUB_MAX_BACKOFF_SECS)]
    pub pubsub_max_backoff_secs: u64,

    // ----- health and telemetry -----
    /// /readyz database probe timeout, ms.
    #[arg(long, env = "OBSCURA_HEALTH_DB_TIMEOUT_MS", default_value_t = limits::HEALTH_DB_TIMEOUT_MS)]
    pub health_db_timeout_ms: u64,
    /// /readyz pub/sub probe timeout, ms.
    #[arg(long, env = "OBSCURA_HEALTH_PUBSUB_TIMEOUT_MS", default_value_t = limits::HEALTH_PUBSUB_TIMEOUT_MS)]
    pub health_pubsub_timeout_ms: u64,
    /// Log format (level from RUST_LOG, default info).
    #[arg(long, env = "OBSCURA_TELEMETRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub telemetry_log_format: LogFormat,

    /// Test builds only: delay every store round trip by this many ms, to
    /// exercise /readyz timeouts. Compiled out of release builds.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true, default_value_t = 0)]
    pub test_fault_store_delay_ms: u64,

    /// Test builds only: every journal flush fails (the store poisons
    /// itself), to exercise the failed-fsync path. Compiled out of release builds.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true)]
    pub test_fault_store_fail_flush: bool,

    /// Test builds only: every append on the ScyllaDB store waits this many
    /// ms after taking its mailbox positions, before writing its rows, to
    /// make a late commit across relay nodes. Compiled out of release builds.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true, default_value_t = 0)]
    pub test_fault_append_delay_ms: u64,

    /// Test builds only: a relay's claim on its ScyllaDB node tag lives this
    /// many seconds (renewed every quarter of it), so a test can pause a
    /// relay for longer. Compiled out of release builds.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true, default_value_t = limits::SCYLLA_NODE_TAG_TTL_SECS)]
    pub test_node_tag_ttl_secs: u64,

    /// Test builds only: empty every table of the ScyllaDB keyspace at
    /// start (tests lease keyspaces from a pool). Compiled out of release
    /// builds.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true)]
    pub test_scylla_reset_keyspace: bool,

    /// Test builds only: the process kills itself (SIGKILL) right after an
    /// account deletion commits, before its sockets are closed and its
    /// blobs deleted, to exercise the clean-up after a restart. Compiled out
    /// of release builds.
    #[cfg(debug_assertions)]
    #[arg(long, hide = true)]
    pub test_fault_abort_after_account_deletion: bool,
}

/// A secret option's value; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Secret(value.to_string()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which backend keeps the server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// fjall in `--data-dir`: one process.
    Embedded,
    /// A ScyllaDB (or Cassandra) cluster: the `--scylla-*` options.
    Scylla,
}

/// Maintenance tasks run instead of the server.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The ScyllaDB schema (`schema apply`).
    Schema {
        /// What to do.
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Moving a deployment between stores (`store copy`).
    Store {
        /// What to do.
        #[command(subcommand)]
        action: StoreAction,
    },
}

/// `obscura-relay schema …`
#[derive(Debug, Clone, Subcommand)]
pub enum SchemaAction {
    /// Creates the keyspace if absent and applies the schema this binary
    /// carries (idempotent; safe while nodes run).
    Apply,
}

/// `obscura-relay store …`
#[derive(Debug, Clone, Subcommand)]
pub enum StoreAction {
    /// Copies everything an embedded store holds into a ScyllaDB keyspace
    /// (blob bytes stay where they are).
    Copy {
        /// The embedded store's data directory (the server must be stopped).
        #[arg(long)]
        from: PathBuf,
        /// The store to copy into.
        #[arg(long, value_enum)]
        to: StoreKind,
    },
}

/// A CQL consistency level (`--scylla-consistency`), written as CQL spells
/// it (`LOCAL_QUORUM`) or in lower case with dashes (`local-quorum`). Only
/// levels whose reads and writes overlap are offered: below a quorum (`ONE`,
/// `TWO`, `THREE`, `LOCAL_ONE`) a read may miss an acknowledged write, so a
/// message could be skipped, and the late-commit window (docs/ARCHITECTURE.md)
/// and every check-then-act assume it cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CqlConsistency {
    /// QUORUM
    #[value(alias = "QUORUM")]
    Quorum,
    /// ALL
    #[value(alias = "ALL")]
    All,
    /// LOCAL_QUORUM
    #[value(alias = "LOCAL_QUORUM")]
    LocalQuorum,
    /// EACH_QUORUM
    #[value(alias = "EACH_QUORUM")]
    EachQuorum,
}

/// The ScyllaDB store's options (`--store scylla`); every one also applies
/// to `schema apply` and `store copy`.
#[derive(Debug, Clone, Args)]
pub struct ScyllaConfig {
    /// Contact points, `host:port`, comma-separated (the driver finds the
    /// rest of the cluster from them).
    #[arg(
        long,
        env = "OBSCURA_SCYLLA_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:9042",
        global = true
    )]
    pub scylla_nodes: Vec<String>,
    /// Keyspace of the relay's tables.
    #[arg(long, env = "OBSCURA_SCYLLA_KEYSPACE", default_value = "obscura", global = true)]
    pub scylla_keyspace: String,
    /// Replicas of every row (SimpleStrategy), when the keyspace is created.
    #[arg(long, env = "OBSCURA_SCYLLA_REPLICATION_FACTOR", default_value_t = 3, global = true)]
    pub scylla_replication_factor: u32,
    /// Replicas per datacenter, `dc:n,dc:n` (NetworkTopologyStrategy); wins
    /// over --scylla-replication-factor when given.
    #[arg(long, env = "OBSCURA_SCYLLA_REPLICATION_DATACENTERS", global = true)]
    pub scylla_replication_datacenters: Option<String>,
    /// Datacenter whose nodes serve requests first (with LOCAL_QUORUM).
    #[arg(long, env = "OBSCURA_SCYLLA_LOCAL_DATACENTER", global = true)]
    pub scylla_local_datacenter: Option<String>,
    /// Consistency of every read and write; a send is answered only once its
    /// writes are acknowledged at this level. Checks-then-acts use the
    /// matching serial level (LOCAL_SERIAL under LOCAL_QUORUM, else SERIAL).
    #[arg(long, env = "OBSCURA_SCYLLA_CONSISTENCY", value_enum, default_value_t = CqlConsistency::LocalQuorum, global = true)]
    pub scylla_consistency: CqlConsistency,
    /// User name (PasswordAuthenticator); none: no authentication.
    #[arg(long, env = "OBSCURA_SCYLLA_USERNAME", global = true)]
    pub scylla_username: Option<String>,
    /// Password of --scylla-username.
    #[arg(long, env = "OBSCURA_SCYLLA_PASSWORD", hide_env_values = true, global = true)]
    pub scylla_password: Option<String>,
    /// Time to open a connection to a node, ms.
    #[arg(long, env = "OBSCURA_SCYLLA_CONNECT_TIMEOUT_MS", default_value_t = limits::SCYLLA_CONNECT_TIMEOUT_MS, global = true)]
    pub scylla_connect_timeout_ms: u64,
    /// Time one request may take (retries included), ms; a send whose
    /// writes are not acknowledged within it fails with 500.
    #[arg(long, env = "OBSCURA_SCYLLA_REQUEST_TIMEOUT_MS", default_value_t = limits::SCYLLA_REQUEST_TIMEOUT_MS, global = true)]
    pub scylla_request_timeout_ms: u64,
    /// Threads of the driver's tokio runtime (1: one thread with a
    /// current-thread runtime).
    #[arg(long, env = "OBSCURA_SCYLLA_DRIVER_THREADS", default_value_t = limits::SCYLLA_DRIVER_THREADS, global = true)]
    pub scylla_driver_threads: usize,
    /// Create the keyspace if absent and apply the schema at start
    /// (idempotent, safe when several nodes start at once). Without it, a
    /// missing or older schema stops the start.
    #[arg(long, env = "OBSCURA_SCYLLA_CREATE_SCHEMA", action = ArgAction::Set, default_value_t = false, global = true)]
    pub scylla_create_schema: bool,
}

impl ScyllaConfig {
    /// The per-datacenter replication factors, if given.
    pub fn datacenters(&self) -> Result<Option<Vec<(String, u32)>>, ConfigError> {
        let Some(spec) = &self.scylla_replication_datacenters else {
            return Ok(None);
        };
        let bad = || ConfigError::Datacenters(spec.clone());
        let pairs = spec
            .split(',')
            .map(|pair| {
                let (dc, n) = pair.trim().split_once(':').ok_or_else(bad)?;
                let n: u32 = n.trim().parse().map_err(|_| bad())?;
                let valid =
                    n > 0 && !dc.is_empty() && dc.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                valid.then(|| (dc.to_string(), n)).ok_or_else(bad)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(pairs))
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.scylla_request_timeout_ms)
    }
}

/// Faults a test build can inject into the store; always none in release.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreFaults {
    /// Every ping (the /readyz round trip) takes this long.
    pub ping_delay: Duration,
    /// Every journal flush fails.
    pub fail_flushes: bool,
    /// Every ScyllaDB append waits this long between taking its mailbox
    /// positions and writing its rows (a late commit, as from a slow node).
    pub append_delay: Duration,
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A rate-limit burst of zero would refuse every request.
    #[error("--{0} must be at least 1")]
    ZeroBurst(&'static str),
    /// A bound that must be positive was zero.
    #[error("--{0} must be greater than 0")]
    Zero(&'static str),
    /// A minimum above its maximum.
    #[error("--{0}-min-size-bytes must not exceed --{0}-max-size-bytes")]
    SizeRange(&'static str),
    /// `--scylla-replication-datacenters` is not `dc:n,dc:n`.
    #[error("--scylla-replication-datacenters must be `dc:n,dc:n` with n at least 1, got {0:?}")]
    Datacenters(String),
    /// More shards than the process can reasonably run.
    #[error("--shards must be between 1 and {max}, got {got}")]
    Shards {
        /// The largest accepted value.
        max: usize,
        /// The value given.
        got: usize,
    },
}

impl Config {
    /// Checks the relations between options that clap cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rate_limit_burst == 0 {
            return Err(ConfigError::ZeroBurst("rate-limit-burst"));
        }
        if self.auth_rate_limit_burst == 0 {
            return Err(ConfigError::ZeroBurst("auth-rate-limit-burst"));
        }
        if self.rate_limit_lookup_burst == 0 {
            return Err(ConfigError::ZeroBurst("rate-limit-lookup-burst"));
        }
        if let Some((name, _)) = self.must_be_positive().iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Zero(name));
        }
        if self.attachment_min_size_bytes > self.attachment_max_size_bytes {
            return Err(ConfigError::SizeRange("attachment"));
        }
        if self.backup_min_size_bytes > self.backup_max_size_bytes {
            return Err(ConfigError::SizeRange("backup"));
        }
        self.scylla.datacenters()?;
        if self.scylla.scylla_nodes.iter().all(|n| n.trim().is_empty()) {
            return Err(ConfigError::Zero("scylla-nodes"));
        }
        let shards = self.shard_count();
        if shards == 0 || shards > limits::SHARDS_MAX {
            return Err(ConfigError::Shards {
                max: limits::SHARDS_MAX,
                got: shards,
            });
        }
        Ok(())
    }

    /// The options that must not be 0, with their values.
    fn must_be_positive(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("http-header-bytes-max", self.http_header_bytes_max as u64),
            ("http-headers-count-max", self.http_headers_count_max as u64),
            ("http-request-head-timeout-ms", self.http_request_head_timeout_ms),
            (
                "http-connections-per-shard-max",
                self.http_connections_per_shard_max as u64,
            ),
            ("server-request-timeout-secs", self.server_request_timeout_secs),
            ("server-global-timeout-secs", self.server_global_timeout_secs),
            ("store-read-threads", self.store_read_threads as u64),
            ("store-mailbox-index-max", self.store_mailbox_index_max as u64),
            ("rate-limit-clients-max", self.rate_limit_clients_max as u64),
            ("messaging-cleanup-interval-secs", self.messaging_cleanup_interval_secs),
            (
                "auth-revocation-sync-interval-secs",
                self.auth_revocation_sync_interval_secs,
            ),
            ("ws-outbound-buffer-size", self.ws_outbound_buffer_size as u64),
            ("ws-ack-batch-size", self.ws_ack_batch_size as u64),
            ("ws-message-fetch-batch-size", self.ws_message_fetch_batch_size as u64),
            ("ws-write-timeout-secs", self.ws_write_timeout_secs),
            (
                "notifications-worker-interval-secs",
                self.notifications_worker_interval_secs,
            ),
            (
                "notifications-worker-concurrency",
                self.notifications_worker_concurrency as u64,
            ),
            (
                "notifications-visibility-timeout-secs",
                self.notifications_visibility_timeout_secs,
            ),
            (
                "notifications-invalid-token-cleanup-interval-secs",
                self.notifications_invalid_token_cleanup_interval_secs,
            ),
            (
                "notifications-invalid-token-cleanup-batch-size",
                self.notifications_invalid_token_cleanup_batch_size as u64,
            ),
            ("fcm-timeout-secs", self.fcm_timeout_secs),
            ("attachment-timeout-secs", self.attachment_timeout_secs),
            (
                "attachment-cleanup-interval-secs",
                self.attachment_cleanup_interval_secs,
            ),
            (
                "attachment-cleanup-batch-size",
                self.attachment_cleanup_batch_size as u64,
            ),
            ("backup-timeout-secs", self.backup_timeout_secs),
            ("backup-cleanup-interval-secs", self.backup_cleanup_interval_secs),
            ("pubsub-min-backoff-secs", self.pubsub_min_backoff_secs),
            (
                "scylla-replication-factor",
                u64::from(self.scylla.scylla_replication_factor),
            ),
            ("scylla-connect-timeout-ms", self.scylla.scylla_connect_timeout_ms),
            ("scylla-request-timeout-ms", self.scylla.scylla_request_timeout_ms),
            ("scylla-driver-threads", self.scylla.scylla_driver_threads as u64),
        ]
    }

    /// The number of shards to run: the flag, else the CPUs we may use.
    pub fn shard_count(&self) -> usize {
        self.shards.unwrap_or_else(crate::util::cpus::allowed_cpu_count)
    }

    /// The number of password-hashing threads.
    pub fn password_worker_count(&self) -> usize {
        self.password_workers
            .unwrap_or_else(crate::util::cpus::allowed_cpu_count)
            .max(1)
    }

    /// Standard route timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server_request_timeout_secs)
    }

    /// Lifetime of messages and attachments, seconds.
    pub fn ttl_secs(&self) -> i64 {
        i64::try_from(self.ttl_days.saturating_mul(86_400)).unwrap_or(i64::MAX / 2)
    }

    /// Catch-all route timeout.
    pub fn global_timeout(&self) -> Duration {
        Duration::from_secs(self.server_global_timeout_secs)
    }

    /// Attachment route timeout.
    pub fn attachment_timeout(&self) -> Duration {
        Duration::from_secs(self.attachment_timeout_secs)
    }

    /// Backup route timeout.
    pub fn backup_timeout(&self) -> Duration {
        Duration::from_secs(self.backup_timeout_secs)
    }

    /// Age after which an unfinished backup upload is stale, ms.
    pub fn backup_stale_threshold_ms(&self) -> i64 {
        i64::try_from(self.backup_stale_threshold_mins.saturating_mul(60_000)).unwrap_or(i64::MAX)
    }

    /// Whether this (test) build aborts right after an account deletion
    /// commits (always false in release).
    pub fn abort_after_account_deletion(&self) -> bool {
        #[cfg(debug_assertions)]
        return self.test_fault_abort_after_account_deletion;
        #[cfg(not(debug_assertions))]
        return false;
    }

    /// The store faults of test builds (none in release).
    pub fn store_faults(&self) -> StoreFaults {
        #[cfg(debug_assertions)]
        return StoreFaults {
            ping_delay: Duration::from_millis(self.test_fault_store_delay_ms),
            fail_flushes: self.test_fault_store_fail_flush,
            append_delay: Duration::from_millis(self.test_fault_append_delay_ms),
        };
        #[cfg(not(debug_assertions))]
        return StoreFaults::default();
    }

    /// Life of a relay's claim on its ScyllaDB node tag (shorter in test
    /// builds that ask, so a test can pause a relay for longer).
    pub fn node_tag_ttl(&self) -> Duration {
        #[cfg(debug_assertions)]
        return Duration::from_secs(self.test_node_tag_ttl_secs.max(1));
        #[cfg(not(debug_assertions))]
        return Duration::from_secs(limits::SCYLLA_NODE_TAG_TTL_SECS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Config {
        Config::parse_from(std::iter::once("obscura-relay").chain(extra.iter().copied()))
    }

    /// Goal: a consistency level below a quorum is refused at start, with
    /// the levels that are accepted (review item 5 of issue 21).
    #[test]
    fn consistency_below_a_quorum_is_refused() {
        for weak in ["ONE", "TWO", "THREE", "LOCAL_ONE", "one"] {
            let parsed = Config::try_parse_from(["obscura-relay", "--scylla-consistency", weak]);
            let error = parsed.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                error.contains("LOCAL_QUORUM") || error.contains("local-quorum"),
                "{weak}: {error}"
            );
        }
        for quorum in ["QUORUM", "LOCAL_QUORUM", "local-quorum", "EACH_QUORUM", "ALL"] {
            assert!(Config::try_parse_from(["obscura-relay", "--scylla-consistency", quorum]).is_ok());
        }
    }

    /// Goal: the blob options default to BEHAVIOR.md §14.7, and `validate`
    /// refuses an inverted size range and zero periods, batch or timeouts.
    #[test]
    fn blob_options_default_and_validate() {
        let config = parse(&[]);
        assert_eq!(config.attachment_max_size_bytes, 52_428_800);
        assert_eq!(
            (config.backup_min_size_bytes, config.backup_max_size_bytes),
            (32, 2_097_152)
        );
        assert_eq!(config.storage_backend, StorageBackend::Local);
        assert!(config.validate().is_ok());
        let inverted = parse(&["--backup-min-size-bytes", "10", "--backup-max-size-bytes", "9"]);
        assert!(matches!(inverted.validate(), Err(ConfigError::SizeRange("backup"))));
        let inverted = parse(&["--attachment-min-size-bytes", "2", "--attachment-max-size-bytes", "1"]);
        assert!(matches!(inverted.validate(), Err(ConfigError::SizeRange("attachment"))));
        for flag in [
            "--attachment-timeout-secs",
            "--attachment-cleanup-interval-secs",
            "--attachment-cleanup-batch-size",
            "--backup-timeout-secs",
            "--backup-cleanup-interval-secs",
        ] {
            assert!(
                matches!(parse(&[flag, "0"]).validate(), Err(ConfigError::Zero(_))),
                "{flag}"
            );
        }
    }

    /// Goal: the lookup tier defaults to 1 per second with a burst of 30
    /// (issue 15), a burst of 0 and a revocation re-read period of 0 are
    /// refused, and the test-build fault is off unless asked for.
    #[test]
    fn account_options_default_and_validate() {
        let config = parse(&[]);
        assert_eq!(
            (config.rate_limit_lookup_per_second, config.rate_limit_lookup_burst),
            (1, 30)
        );
        assert_eq!(config.auth_revocation_sync_interval_secs, 5);
        assert!(!config.abort_after_account_deletion());
        assert!(matches!(
            parse(&["--rate-limit-lookup-burst", "0"]).validate(),
            Err(ConfigError::ZeroBurst("rate-limit-lookup-burst"))
        ));
        assert!(matches!(
            parse(&["--auth-revocation-sync-interval-secs", "0"]).validate(),
            Err(ConfigError::Zero("auth-revocation-sync-interval-secs"))
        ));
        assert!(parse(&["--test-fault-abort-after-account-deletion"]).abort_after_account_deletion());
    }
}

//! Every bound of the server with its unit and its reason, and the default
//! of every numeric option: [`crate::config`] takes each default from here,
//! and bounds that are not options (queue depths, scan slices, retry waits)
//! live here alone. Units come last in the names. Where two bounds depend
//! on each other a `const` assertion at the end checks it at compile time.

/// Request head (request line + headers): 16 KiB is what common proxies allow
/// and far above any client of ours; larger heads are refused with 431.
pub const HTTP_HEADER_BYTES_MAX: usize = 16 * 1024;

/// Header lines per request: our clients send fewer than 15.
pub const HTTP_HEADERS_COUNT_MAX: usize = 100;

/// Buffered bodies (JSON, protobuf): the reference server's 2 MiB cap, which
/// also caps one message's ciphertext (BEHAVIOR.md §3.6).
pub const HTTP_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;

/// A client has 10 s to send a request head once it has started one (or has
/// connected): the slow-loris bound.
pub const HTTP_REQUEST_HEAD_TIMEOUT_MS: u64 = 10_000;

/// Idle keep-alive connections are closed after a minute.
pub const HTTP_KEEPALIVE_TIMEOUT_SECS: u64 = 60;

/// Open connections per shard: with 2 shards this stays below the 20,000
/// files a process may hold here, with room for the store's files.
pub const HTTP_CONNECTIONS_PER_SHARD_MAX: usize = 9_000;

/// After a 413 (or any early answer) we read and discard at most this much of
/// the unread body before closing, so the client sees the answer instead of a
/// reset (RFC 9112 §9.6 lingering close).
pub const HTTP_DISCARD_BYTES_MAX: usize = 4 * 1024 * 1024;

/// ...and spend at most this long doing it.
pub const HTTP_DISCARD_TIMEOUT_MS: u64 = 2_000;

/// Bytes read from a socket per read call.
pub const HTTP_READ_CHUNK_BYTES: usize = 8 * 1024;

/// The first read of a request: most requests fit, and an idle keep-alive
/// connection holds only this much while it waits (idle connections must
/// cost little; 8 KiB here made each one cost ~4 KiB of RSS).
pub const HTTP_FIRST_READ_BYTES: usize = 1024;

/// Longest chunk-size line of a chunked body, extensions included.
pub const HTTP_CHUNK_LINE_BYTES_MAX: usize = 1024;

/// Pending jobs per mesh queue (one queue per target shard). A full queue
/// makes the sender wait: back-pressure, never a drop.
pub const MESH_QUEUE_DEPTH: usize = 4096;

/// A sender that finds a bounded queue full (a mesh inbox, the store's
/// channels, a worker pool) keeps its item and offers it again after this
/// long: short enough that a shard's queue that drains in microseconds is
/// refilled at once, long enough that a waiting sender costs no CPU worth
/// measuring (the hottest queue, a mesh inbox, empties in ~1 µs per job).
pub const QUEUE_FULL_RETRY_US: u64 = 100;

/// Pending connections per listening socket (`listen(2)` backlog): a burst
/// of this many connects waits for accept instead of being refused; the
/// kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Submission-queue entries of each shard's io_uring: I/O operations one
/// shard has in flight at once before submissions wait (every open socket
/// holds one pending read).
pub const IO_URING_ENTRIES: u32 = 4096;

/// A shard at `--http-connections-per-shard-max` looks again this often
/// for room to accept.
pub const ACCEPT_AT_CAP_RETRY_MS: u64 = 5;

/// After a failed accept (out of files, say) a shard waits this long
/// before the next, so a persistent failure does not spin.
pub const ACCEPT_ERROR_RETRY_MS: u64 = 10;

/// A management request may take `--health-db-timeout-ms` plus this long
/// (the store probe's answer, then the response).
pub const ADMIN_DEADLINE_SLACK_MS: u64 = 5_000;

/// Open connections on the management port: probes and scrapers, a few
/// at a time.
pub const ADMIN_CONNECTIONS_MAX: usize = 64;

/// While a shard drains at shutdown it looks at its open connections (and
/// then at the other shards) this often.
pub const SHUTDOWN_POLL_MS: u64 = 2;

/// Shards per process: far above any core count we run on.
pub const SHARDS_MAX: usize = 256;

/// Default of `--scylla-connect-timeout-ms`: a node on the same network
/// answers a TCP connect and the CQL handshake in milliseconds; 5 s leaves
/// room for a busy node without hanging a start for long.
pub const SCYLLA_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Default of `--scylla-request-timeout-ms`: above the servers' own write
/// timeout (2 s on ScyllaDB and Cassandra), so a slow write is reported by
/// the database first and our timeout only catches a lost connection.
pub const SCYLLA_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// The clock skew between relay nodes the ScyllaDB store allows for, ms:
/// positions carry the time of the node that took them, so a message may
/// commit this much (plus its write's time) behind a position another node
/// took later. NTP keeps hosts well inside it; a larger skew can make a
/// session deliver a late message only at its next read.
pub const SCYLLA_CLOCK_SKEW_MS: u64 = 1_000;

/// Life of a relay's claim on its node tag in the ScyllaDB store, s: a tag
/// whose relay died is free again this long after its last renewal.
pub const SCYLLA_NODE_TAG_TTL_SECS: u64 = 120;

/// How often a relay renews its node tag, s: four tries within the TTL.
pub const SCYLLA_NODE_TAG_RENEW_SECS: u64 = 30;

const _: () = assert!(
    SCYLLA_NODE_TAG_RENEW_SECS * 4 <= SCYLLA_NODE_TAG_TTL_SECS,
    "a node tag is renewed several times within its TTL"
);

/// How often a relay on the ScyllaDB store reads the devices deleted
/// lately through any relay node, s: until it does, it may still deliver a
/// message the deleted device sent (never after).
pub const SCYLLA_DELETED_SENDERS_REFRESH_SECS: u64 = 2;

/// How far back that read looks, s: many refresh periods, and clock skew.
pub const SCYLLA_DELETED_SENDERS_LOOKBACK_SECS: i64 = 60;

/// Width of a ScyllaDB mailbox bucket (one partition per device and
/// bucket), ms: an hour keeps a busy device's partition to an hour of its
/// traffic, and a device that was offline for the 30-day lifetime of its
/// messages to 720 buckets.
pub const SCYLLA_MAILBOX_BUCKET_MS: u64 = 3_600_000;

/// TTLs of ScyllaDB rows outlive the data's own expiry by a day: they only
/// collect garbage, reads check expiry themselves.
pub const SCYLLA_TTL_GRACE_SECS: i64 = 86_400;

/// Longest TTL written: two years. Nothing the relay keeps lives that long,
/// and Cassandra 3.11 refuses expiry dates past 2038.
pub const SCYLLA_TTL_MAX_SECS: i64 = 2 * 365 * 86_400;

/// Mailboxes whose last handed-out position the ScyllaDB store remembers
/// (for `prev`); beyond it, those with nothing in flight are forgotten and
/// their next message names no known predecessor (one store read).
pub const SCYLLA_MAILBOXES_TRACKED_MAX: usize = 262_144;

/// Entries per generation of each ScyllaDB store cache (devices, mailbox
/// buckets, scheduled pushes, ack counts): about 100 bytes each.
pub const SCYLLA_CACHE_ENTRIES_MAX: usize = 131_072;

/// Acks after which a mailbox's floor is moved up (one read from the floor
/// and one write): a fetch from the floor then passes at most this many
/// tombstones.
pub const SCYLLA_FLOOR_ACKS: usize = 64;

/// Empty index buckets one scan looks at before it stops; the floor it
/// raised lets the next scan go on.
pub const SCYLLA_INDEX_BUCKETS_PER_SCAN: i64 = 512;

/// Rows one page of a time-index read takes (the revocation log's "since"
/// read pages through a bucket this many rows at a time).
pub const SCYLLA_INDEX_ROWS_PER_READ: usize = 1_000;

/// Attempts of a compare-and-set (device slots, leases, backups) that
/// lose races before the store gives up: each loss means another change
/// landed, so this many in a row only happens under a storm of them.
pub const SCYLLA_CAS_ATTEMPTS_MAX: usize = 32;

/// Times a lightweight transaction whose outcome is unknown (its Paxos
/// round timed out) is asked again to learn what happened; each asking
/// finishes the round it finds, so more than one more is rare.
pub const SCYLLA_UNKNOWN_OUTCOME_ATTEMPTS: usize = 4;

/// Index entries a push-lease run reads per lease it may hand out: stale
/// entries (jobs cancelled or moved) are deleted as they are met, so a few
/// per lease find the due jobs without reading every due entry at once.
pub const SCYLLA_PUSH_SCAN_PER_LEASE_COUNT: usize = 4;

/// Default of `--scylla-driver-threads`, the ScyllaDB driver's tokio
/// runtime (see docs/ARCHITECTURE.md for the measurement behind it).
pub const SCYLLA_DRIVER_THREADS: usize = 1;

/// Statements per batch of the retention sweep's deletes (one partition):
/// well below the servers' batch size warnings.
pub const SCYLLA_BATCH_ROWS_MAX: usize = 100;

/// Payload bytes per batch of message rows: a send's messages to several
/// mailboxes go in as few requests as stay below the servers' batch-size
/// warning (128 KiB on ScyllaDB and on the test node).
pub const SCYLLA_BATCH_BYTES_MAX: usize = 64 * 1024;

/// Store read threads: reads are short point lookups and small scans.
pub const STORE_READ_THREADS: usize = 2;

/// Default of `--store-mailbox-index-max`: devices plus queued messages
/// indexed in memory per generation (two generations: about 50 MiB at most).
pub const STORE_MAILBOX_INDEX_MAX: usize = 262_144;

/// Mailbox positions the embedded store reserves per `meta` write: one
/// small durable write per 65,536 messages, and a restart skips at most
/// that many numbers.
pub const STORE_SEQ_BLOCK_COUNT: u64 = 1 << 16;

/// Rows per batch when a store from an older version gets a new index
/// built at its first open: bounds the batch's memory (about 100 B a row).
pub const STORE_BACKFILL_BATCH_COUNT: usize = 10_000;

/// Outstanding gateway tickets beyond which expired ones are swept on
/// insert: the table stays small without a timer.
pub const TICKETS_SWEEP_AT_COUNT: usize = 4096;

/// Pending store jobs (reads or writes) before callers wait.
pub const STORE_QUEUE_DEPTH: usize = 65_536;

/// Writes that share one journal flush at most: bounds the latency one
/// flush adds to the first write of its group.
pub const STORE_GROUP_COMMIT_MAX: usize = 1024;

/// Pending password hashes before callers wait.
pub const PASSWORD_QUEUE_DEPTH: usize = 4096;

/// (Client IP, tier) pairs the rate limiter remembers, for the whole process.
pub const RATE_LIMIT_CLIENTS_MAX: usize = 100_000;

/// Slots of the rate-limit table probed from a key's home slot before one
/// is reused: a lookup touches at most this many (one or two cache lines).
pub const RATE_LIMIT_PROBE_SLOTS: usize = 16;

/// Usernames, ASCII letters, digits and `_` (BEHAVIOR.md §4.2).
pub const USERNAME_CHARS_MIN: usize = 3;

/// ...and at most this long.
pub const USERNAME_CHARS_MAX: usize = 50;

/// Shortest password, UTF-8 bytes (BEHAVIOR.md §4.2).
pub const PASSWORD_BYTES_MIN: usize = 12;

/// Stored password hashes asking argon2 for more memory than this are
/// refused rather than computed: a corrupt or hostile record must not
/// exhaust memory (ours use 19 MiB).
pub const PASSWORD_HASH_MEMORY_KIB_MAX: u32 = 256 * 1024;

/// Device names: the contract's `maxLength` (BEHAVIOR.md §5.1).
pub const DEVICE_NAME_CHARS_MAX: usize = 100;

/// Most push sender threads: provider calls block, so in-flight pushes
/// (`--notifications-worker-concurrency`) beyond this wait for a thread.
pub const PUSH_THREADS_MAX: usize = 16;

/// Push tokens, trimmed, in bytes (BEHAVIOR.md §11.1).
pub const PUSH_TOKEN_BYTES_MAX: usize = 4096;

/// Incoming `x-request-id` values longer than this are replaced.
pub const REQUEST_ID_BYTES_MAX: usize = 128;

/// Refresh tokens purged per store transaction by the cleanup job, so the
/// writer thread is never held for long.
pub const REFRESH_PURGE_SLICE: usize = 1_000;

/// A gateway client that does not take a frame within 30 s is gone or
/// stuck; its socket is closed rather than buffered without bound.
pub const WS_WRITE_TIMEOUT_SECS: u64 = 30;

/// Inbound WebSocket messages: clients only send acks (16 bytes an id plus
/// framing), so 1 MiB holds over 50,000 ids. The reference allows 64 MiB,
/// which would let one socket pin 64 MiB of our memory.
pub const WS_MESSAGE_BYTES_MAX: usize = 1024 * 1024;

/// Control frames (ping, pong, close): RFC 6455 §5.5 allows 125 bytes of
/// payload and no fragmentation; a ping's payload is echoed in the pong.
pub const WS_CONTROL_PAYLOAD_BYTES_MAX: usize = 125;

/// Bytes read from a gateway socket per read call: clients send acks of a
/// few hundred bytes, and an idle socket holds one such buffer in its
/// pending read, so it is kept small (idle gateways must cost little).
pub const WS_READ_CHUNK_BYTES: usize = 512;

/// Devices looked at per slice of the retention sweep, so a shard is never
/// held for long by it.
pub const SWEEP_DEVICES_PER_SLICE: usize = 256;

/// Expired rows deleted per store transaction by the retention sweep.
pub const SWEEP_EXPIRED_PER_SLICE: usize = 1_000;

/// Attachments: the reference server's 50 MiB cap (BEHAVIOR.md §14.7).
pub const ATTACHMENT_BYTES_MAX: u64 = 50 * 1024 * 1024;

/// Backups: the reference server's 2 MiB cap (BEHAVIOR.md §14.7).
pub const BACKUP_BYTES_MAX: u64 = 2 * 1024 * 1024;

/// Body chunks queued between a shard and its upload on the side runtime:
/// with reads of `HTTP_READ_CHUNK_BYTES` that is 64 KiB per upload.
pub const BLOB_UPLOAD_QUEUE_CHUNKS: usize = 8;

/// Object chunks queued between a download on the side runtime and the
/// shard that writes them to the client.
pub const BLOB_DOWNLOAD_QUEUE_CHUNKS: usize = 4;

/// Part size of uploads to the local filesystem: small, so ten concurrent
/// 50 MiB uploads hold a few MiB each, not their bodies.
pub const BLOB_LOCAL_PART_BYTES: usize = 256 * 1024;

/// Part size of S3 multipart uploads: S3 refuses parts under 5 MiB (but the last).
pub const BLOB_S3_PART_BYTES: usize = 5 * 1024 * 1024;

/// Parts of one upload written concurrently; the upload waits beyond this,
/// which bounds its memory to about (this + 1) parts.
pub const BLOB_PARTS_IN_FLIGHT: usize = 2;

/// Threads the side runtime may use for blocking filesystem calls.
pub const SIDE_RUNTIME_BLOCKING_THREADS: usize = 8;

/// Message targets a shard remembers as devices, per generation (two
/// generations; 16 bytes each).
pub const KNOWN_DEVICES_MAX: usize = 65_536;

/// New messages a gateway session holds before it drops them and reads the
/// store instead (a session whose client reads slowly stops buffering).
pub const SESSION_ARRIVALS_MAX: usize = 256;

/// Payload bytes of the new messages a gateway session holds at most.
pub const SESSION_ARRIVAL_BYTES_MAX: usize = 1 << 20;

/// Mailbox positions a gateway session remembers having delivered within
/// its store's late-commit window (several relay nodes only; 8 bytes each):
/// a device that receives more than this within the window may get the
/// oldest of them again (at least once), never miss one.
pub const SESSION_RECENT_POSITIONS_MAX: usize = 65_536;

/// Pongs a gateway session owes at once; a client that pings faster than
/// its socket takes frames gets the latest ones (RFC 6455 §5.5.3 allows
/// answering only the most recent ping).
pub const WS_PONGS_OWED_MAX: usize = 16;

// ----- Defaults of the options (config.rs takes each from here) -----

// Server
/// Default of the option with `OBSCURA_SERVER_PORT`: the reference server's
/// default (BEHAVIOR.md §14.1).
pub const SERVER_PORT: u16 = 3000;

/// Default of the option with `OBSCURA_SERVER_MGMT_PORT`: the reference
/// server's default (BEHAVIOR.md §14.1).
pub const SERVER_MGMT_PORT: u16 = 9090;

/// Default of the option with `OBSCURA_SERVER_SHUTDOWN_TIMEOUT_SECS`: the
/// reference server's default (BEHAVIOR.md §14.1): in-flight requests get this
/// long at shutdown.
pub const SERVER_SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// Default of the option with `OBSCURA_SERVER_REQUEST_TIMEOUT_SECS`: the
/// reference server's default (BEHAVIOR.md §14.1): standard routes answer 408
/// after this long.
pub const SERVER_REQUEST_TIMEOUT_SECS: u64 = 30;

/// Default of the option with `OBSCURA_SERVER_GLOBAL_TIMEOUT_SECS`: the
/// reference server's default (BEHAVIOR.md §14.1): no route may take longer.
pub const SERVER_GLOBAL_TIMEOUT_SECS: u64 = 600;

/// Default of the option with `OBSCURA_TTL_DAYS`: the reference server's
/// default (BEHAVIOR.md §14.1): messages and attachments live this long.
pub const TTL_DAYS: u64 = 30;

// Authentication and rate limits
/// Default of the option with `OBSCURA_AUTH_TOKEN_TTL_SECS`: the reference
/// server's default (BEHAVIOR.md §14.3): a stolen access token is good for 15
/// minutes at most.
pub const AUTH_TOKEN_TTL_SECS: u64 = 900;

/// The shortest access-token secret accepted: 32 bytes, HS256's own key
/// size (RFC 7518 §3.2 asks for at least the hash's output).
pub const AUTH_JWT_SECRET_BYTES_MIN: usize = 32;

/// Random bytes of a generated access-token secret (written as twice as
/// many hex characters, which are the secret's bytes).
pub const AUTH_JWT_GENERATED_SECRET_BYTES: usize = 32;

/// Bytes of a secret's SHA-256 that make its key id (`kid`, in hex): 64
/// bits tell apart the few keys a deployment holds at once.
pub const AUTH_JWT_KEY_ID_BYTES: usize = 8;

/// Default of the option with `OBSCURA_AUTH_REFRESH_TOKEN_TTL_DAYS`: the
/// reference server's default (BEHAVIOR.md §14.3).
pub const AUTH_REFRESH_TOKEN_TTL_DAYS: u64 = 30;

/// Default of the option with
/// `OBSCURA_AUTH_REFRESH_TOKEN_CLEANUP_INTERVAL_SECS`: the reference server's
/// default (BEHAVIOR.md §14.3): expired tokens are refused on use, so a daily
/// purge only reclaims space.
pub const AUTH_REFRESH_TOKEN_CLEANUP_INTERVAL_SECS: u64 = 86_400;

/// Default of the option with `OBSCURA_AUTH_REVOCATION_SYNC_INTERVAL_SECS`:
/// every node re-reads the store's revocation log this often, the backstop
/// that bounds how long a revocation decided on another node (whose event
/// was lost) may go unseen here. One store read per interval.
pub const AUTH_REVOCATION_SYNC_INTERVAL_SECS: u64 = 5;

/// Each re-read of the revocation log starts this long before the previous
/// one began: a revocation stamped by a node whose clock is behind, or
/// committed a little after its stamp, is still read. Applying one twice
/// changes nothing.
pub const AUTH_REVOCATION_SYNC_OVERLAP_MS: i64 = 60_000;

/// A revocation is kept (in memory and in the log) for the access-token
/// lifetime, the verifier's `exp` leeway and this much more, for clocks
/// that differ between nodes: after that every token it refuses has
/// expired anyway.
pub const AUTH_REVOCATION_MARGIN_SECS: u64 = 60;

/// Revocations purged per store call, so the writer is never held long.
pub const AUTH_REVOCATION_PURGE_SLICE: usize = 1_000;

/// A deletion's blob clean-up is left to the request that decided it for
/// this long before the periodic clean-up takes it over (or at once when
/// it was decided before this process started).
pub const ACCOUNT_CLEANUP_GRACE_MS: i64 = 60_000;

/// Pending account deletions finished per run of the clean-up.
pub const ACCOUNT_CLEANUP_BATCH_COUNT: usize = 100;

/// Default of the option with `OBSCURA_AUTH_MAX_DEVICES_PER_USER`: the
/// reference server's default (BEHAVIOR.md §14.3).
pub const DEVICES_PER_USER_MAX: usize = 10;

/// Default of the option with `OBSCURA_RATE_LIMIT_PER_SECOND`: the reference
/// server's default (BEHAVIOR.md §14.3): standard-tier tokens per second per
/// client IP.
pub const RATE_LIMIT_PER_SECOND: u32 = 10;

/// Default of the option with `OBSCURA_RATE_LIMIT_BURST`: the reference
/// server's default (BEHAVIOR.md §14.3): standard-tier bucket capacity.
pub const RATE_LIMIT_BURST_TOKENS: u32 = 20;

/// Default of the option with `OBSCURA_RATE_LIMIT_AUTH_PER_SECOND`: the
/// reference server's default (BEHAVIOR.md §14.3): auth-tier tokens per second
/// per client IP (each costs an argon2 hash).
pub const AUTH_RATE_LIMIT_PER_SECOND: u32 = 1;

/// Default of the option with `OBSCURA_RATE_LIMIT_AUTH_BURST`: the reference
/// server's default (BEHAVIOR.md §14.3): auth-tier bucket capacity.
pub const AUTH_RATE_LIMIT_BURST_TOKENS: u32 = 3;

/// Default of the option with `OBSCURA_RATE_LIMIT_LOOKUP_PER_SECOND`: one
/// username lookup per second per client IP, so walking the namespace to
/// learn who has an account is slow.
pub const LOOKUP_RATE_LIMIT_PER_SECOND: u32 = 1;

/// Default of the option with `OBSCURA_RATE_LIMIT_LOOKUP_BURST`: a client
/// adding its contacts may look up 30 names at once.
pub const LOOKUP_RATE_LIMIT_BURST_TOKENS: u32 = 30;

// Keys and messages
/// Default of the option with `OBSCURA_PRE_KEYS_MAX`: the reference server's
/// default (BEHAVIOR.md §14.4): one-time prekeys per device and per upload.
pub const PRE_KEYS_COUNT_MAX: usize = 100;

/// Default of the option with `OBSCURA_PRE_KEY_REFILL_THRESHOLD`: the
/// reference server's default (BEHAVIOR.md §14.4): below this many one-time
/// prekeys a device is told to refill.
pub const PRE_KEYS_LOW_COUNT: usize = 20;

/// Default of the option with `OBSCURA_MESSAGING_SEND_BATCH_LIMIT`: the
/// reference server's default (BEHAVIOR.md §14.4): submissions per `POST
/// /v1/messages`.
pub const SEND_SUBMISSIONS_MAX: usize = 100;

/// Default of the option with `OBSCURA_MESSAGING_IDEMPOTENCY_TTL_SECS`: the
/// reference server's default (BEHAVIOR.md §14.4): a retried send within a day
/// gets the first answer.
pub const IDEMPOTENCY_TTL_SECS: u64 = 86_400;

/// Default of the option with `OBSCURA_MESSAGING_INBOX_MAX_SIZE`: the
/// reference server's default (BEHAVIOR.md §14.4): messages kept per device by
/// the retention sweep.
pub const INBOX_MESSAGES_MAX: usize = 1000;

/// Default of the option with `OBSCURA_MESSAGING_CLEANUP_INTERVAL_SECS`: the
/// reference server's default (BEHAVIOR.md §14.4): how often the retention
/// sweep runs.
pub const MESSAGING_CLEANUP_INTERVAL_SECS: u64 = 300;

// Gateway
/// Default of the option with `OBSCURA_WS_TICKET_TTL_SECS`: the reference
/// server's default (BEHAVIOR.md §14.6): a ticket is redeemed right after it
/// is issued.
pub const WS_TICKET_TTL_SECS: u64 = 30;

/// Default of the option with `OBSCURA_WS_OUTBOUND_BUFFER_SIZE`: the reference
/// server's default (BEHAVIOR.md §14.6): frames written between two looks at a
/// socket's acks and pings.
pub const WS_OUTBOUND_FRAMES_MAX: usize = 32;

/// Default of the option with `OBSCURA_WS_ACK_BUFFER_SIZE`: the reference
/// server's default (BEHAVIOR.md §14.6): ack ids a socket may have waiting
/// before its reader pauses.
pub const WS_ACK_BUFFER_IDS_MAX: usize = 1000;

/// Default of the option with `OBSCURA_WS_ACK_BATCH_SIZE`: the reference
/// server's default (BEHAVIOR.md §14.6): ack ids per store delete.
pub const WS_ACK_BATCH_IDS_MAX: usize = 100;

/// Default of the option with `OBSCURA_WS_ACK_FLUSH_INTERVAL_MS`: the
/// reference server's default (BEHAVIOR.md §14.6): longest wait of an ack
/// before its batch is applied (an ack lost in a crash redelivers at most this
/// much).
pub const WS_ACK_FLUSH_INTERVAL_MS: u64 = 500;

/// Default of the option with `OBSCURA_WS_PING_INTERVAL_SECS`: the reference
/// server's default (BEHAVIOR.md §14.6): well inside common proxies' 60 s idle
/// timeouts.
pub const WS_PING_INTERVAL_SECS: u64 = 30;

/// Default of the option with `OBSCURA_WS_PING_TIMEOUT_SECS`: the reference
/// server's default (BEHAVIOR.md §14.6): silence tolerated beyond a ping
/// interval.
pub const WS_PING_TIMEOUT_SECS: u64 = 10;

/// Default of the option with `OBSCURA_WS_PREKEY_DEBOUNCE_INTERVAL_MS`: the
/// reference server's default (BEHAVIOR.md §14.6): low-prekey events within it
/// share one PreKeyStatus.
pub const WS_PREKEY_DEBOUNCE_INTERVAL_MS: u64 = 500;

/// Default of the option with `OBSCURA_WS_MESSAGE_FETCH_BATCH_SIZE`: the
/// reference server's default (BEHAVIOR.md §14.6): messages per store read of
/// a session.
pub const WS_FETCH_MESSAGES_MAX: usize = 50;

/// Default of the option with `OBSCURA_WS_DELIVERY_INTERVAL_MS`: ours: every
/// new message goes out at once unless an operator trades latency for fuller
/// frames.
pub const WS_DELIVERY_INTERVAL_MS: u64 = 0;

/// Default of the option with `OBSCURA_WS_MAX_BATCH_BYTES`: the reference
/// server's default (BEHAVIOR.md §14.6): soft cap of one `EnvelopeBatch`
/// frame.
pub const WS_MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

// Push
/// Default of the option with `OBSCURA_NOTIFICATIONS_PUSH_DELAY_SECS`: the
/// reference server's default (BEHAVIOR.md §14.5): events of a device within
/// it share one push, and a session or ack before it cancels it.
pub const PUSH_DELAY_SECS: u64 = 2;

/// Default of the option with `OBSCURA_NOTIFICATIONS_WORKER_INTERVAL_SECS`:
/// the reference server's default (BEHAVIOR.md §14.5): how often due push jobs
/// are leased.
pub const PUSH_WORKER_INTERVAL_SECS: u64 = 1;

/// Default of the option with `OBSCURA_NOTIFICATIONS_WORKER_CONCURRENCY`: the
/// reference server's default (BEHAVIOR.md §14.5): pushes in flight at once (=
/// jobs leased per poll).
pub const PUSHES_IN_FLIGHT_MAX: usize = 100;

/// Default of the option with `OBSCURA_NOTIFICATIONS_VISIBILITY_TIMEOUT_SECS`:
/// the reference server's default (BEHAVIOR.md §14.5): a failed push is
/// retried after its lease ends.
pub const PUSH_VISIBILITY_TIMEOUT_SECS: u64 = 30;

/// Default of the option with
/// `OBSCURA_NOTIFICATIONS_INVALID_TOKEN_CLEANUP_INTERVAL_SECS`: the reference
/// server's default (BEHAVIOR.md §14.5): dead tokens are deleted at least this
/// often.
pub const PUSH_DEAD_TOKEN_CLEANUP_INTERVAL_SECS: u64 = 5;

/// Default of the option with
/// `OBSCURA_NOTIFICATIONS_INVALID_TOKEN_CLEANUP_BATCH_SIZE`: the reference
/// server's default (BEHAVIOR.md §14.5): dead tokens deleted at once when this
/// many wait.
pub const PUSH_DEAD_TOKEN_BATCH_COUNT: usize = 50;

/// Default of the option with `OBSCURA_FCM_TTL_SECS`: the reference server's
/// default (BEHAVIOR.md §14.5): FCM keeps an undelivered wake-up for a week.
pub const FCM_TTL_SECS: u64 = 604_800;

/// Default of the option with `OBSCURA_FCM_TIMEOUT_SECS`: ours: one FCM call
/// (or token fetch) that takes longer fails and is retried with its job.
pub const FCM_TIMEOUT_SECS: u64 = 10;

// Attachments and backups
/// Default of the option with `OBSCURA_ATTACHMENT_MIN_SIZE_BYTES`: the
/// reference server's default (BEHAVIOR.md §14.7): an empty attachment is
/// refused.
pub const ATTACHMENT_MIN_BYTES: u64 = 1;

/// Default of the option with `OBSCURA_ATTACHMENT_TIMEOUT_SECS`: the reference
/// server's default (BEHAVIOR.md §14.7): a 50 MiB upload at 3.5 Mbit/s.
pub const ATTACHMENT_TIMEOUT_SECS: u64 = 120;

/// Default of the option with `OBSCURA_ATTACHMENT_CLEANUP_INTERVAL_SECS`: the
/// reference server's default (BEHAVIOR.md §14.7).
pub const ATTACHMENT_CLEANUP_INTERVAL_SECS: u64 = 3600;

/// Default of the option with `OBSCURA_ATTACHMENT_CLEANUP_BATCH_SIZE`: the
/// reference server's default (BEHAVIOR.md §14.7): expired attachments deleted
/// per batch.
pub const ATTACHMENT_CLEANUP_BATCH_COUNT: usize = 100;

/// Default of the option with `OBSCURA_BACKUP_MIN_SIZE_BYTES`: the reference
/// server's default (BEHAVIOR.md §14.7): smaller than any encrypted backup.
pub const BACKUP_MIN_BYTES: u64 = 32;

/// Default of the option with `OBSCURA_BACKUP_TIMEOUT_SECS`: the reference
/// server's default (BEHAVIOR.md §14.7).
pub const BACKUP_TIMEOUT_SECS: u64 = 60;

/// Default of the option with `OBSCURA_BACKUP_STALE_THRESHOLD_MINS`: the
/// reference server's default (BEHAVIOR.md §14.7): an unfinished upload older
/// than this may be taken over.
pub const BACKUP_STALE_THRESHOLD_MINS: u64 = 30;

/// Default of the option with `OBSCURA_BACKUP_CLEANUP_INTERVAL_SECS`: the
/// reference server's default (BEHAVIOR.md §14.7).
pub const BACKUP_CLEANUP_INTERVAL_SECS: u64 = 300;

// Health
/// Default of the option with `OBSCURA_HEALTH_DB_TIMEOUT_MS`: the reference
/// server's default (BEHAVIOR.md §14.8): a store round trip slower than this
/// makes `/readyz` fail.
pub const HEALTH_DB_TIMEOUT_MS: u64 = 2000;

// ----- Cross-node events (--pubsub-url) -----

/// Publishes queued for Redis before more are lost (and a resync is asked
/// for): a few seconds of a busy node's events while its link reconnects.
pub const PUBSUB_PUBLISH_QUEUE_MAX: usize = 16_384;

/// Events from other nodes held for a shard whose inbox is full, handed on
/// by one thread as room frees (beyond them, the shard's sessions read
/// their mailboxes again once there is room: nothing is lost, only late).
pub const PUBSUB_OVERFLOW_MAX: usize = 4096;

/// The overflow thread looks this often for a shard owed its re-read.
pub const PUBSUB_OVERFLOW_CHECK_MS: u64 = 50;

/// A resync (events from other nodes may have been lost) sends this many
/// sessions of a shard to the store per [`RESYNC_TICK_MS`]: 50,000 a second
/// per shard, so a shard's re-reads spread over a second or two instead of
/// reaching the store at once.
pub const RESYNC_SESSIONS_PER_TICK: usize = 500;

/// See [`RESYNC_SESSIONS_PER_TICK`].
pub const RESYNC_TICK_MS: u64 = 10;

/// Publishes sent in one pipeline (one round trip to Redis).
pub const PUBSUB_PIPELINE_MAX: usize = 256;

/// New messages for one device travel between nodes with their payloads
/// up to this many bytes per publish (the receiving session writes them
/// without a store read); beyond it, only the news that the mailbox has
/// new messages travels.
pub const PUBSUB_ARRIVAL_BYTES_MAX: usize = 64 * 1024;

/// An idle publishing connection pings Redis this often, so a lost
/// connection is noticed within about this long.
pub const PUBSUB_KEEPALIVE_MS: u64 = 1_000;

/// A repeated send whose `Idempotency-Key` another relay node holds
/// looks again this often.
pub const SEND_CLAIM_RETRY_MS: u64 = 10;

/// A token revocation (a device or account deletion, a password change)
/// waits at most this long for the other nodes to say they applied it before
/// it answers (past it, it answers anyway; the other nodes' periodic
/// re-reads of the store are the backstop).
pub const PUBSUB_CONFIRM_TIMEOUT_MS: u64 = 2_000;

/// A session waits at most this long for Redis to confirm its device's
/// channel before it reads its backlog (past it, it reads anyway; a lost
/// subscription is covered by the resync after a reconnect).
pub const PUBSUB_SUBSCRIBE_TIMEOUT_MS: u64 = 2_000;

/// Default of the option with `OBSCURA_PUBSUB_MIN_BACKOFF_SECS`: the
/// reference server's default (BEHAVIOR.md §14.2), the first wait before a
/// reconnect.
pub const PUBSUB_MIN_BACKOFF_SECS: u64 = 1;

/// Default of the option with `OBSCURA_PUBSUB_MAX_BACKOFF_SECS`: the
/// reference server's default (BEHAVIOR.md §14.2), the longest wait.
pub const PUBSUB_MAX_BACKOFF_SECS: u64 = 30;

/// Default of the option with `OBSCURA_HEALTH_PUBSUB_TIMEOUT_MS`: the
/// reference server's default (BEHAVIOR.md §14.8), the `/readyz` probe.
pub const HEALTH_PUBSUB_TIMEOUT_MS: u64 = 2000;

// ----- How the bounds relate (checked at compile time) -----

const _: () = assert!(
    HTTP_DISCARD_BYTES_MAX >= HTTP_READ_CHUNK_BYTES,
    "a discard reads whole chunks"
);
const _: () = assert!(HTTP_HEADER_BYTES_MAX >= 1024, "a request line needs room");
const _: () = assert!(
    HTTP_FIRST_READ_BYTES <= HTTP_READ_CHUNK_BYTES,
    "the first read of a request is the smaller one"
);
const _: () = assert!(
    WS_READ_CHUNK_BYTES <= WS_MESSAGE_BYTES_MAX,
    "one read never holds more than a message may be"
);
const _: () = assert!(
    STORE_GROUP_COMMIT_MAX <= STORE_QUEUE_DEPTH,
    "a group is taken from the queue"
);
const _: () = assert!(
    WS_ACK_BATCH_IDS_MAX <= WS_ACK_BUFFER_IDS_MAX,
    "a full batch fits in the ack buffer, or acks wait for the flush interval"
);
const _: () = assert!(
    WS_FETCH_MESSAGES_MAX <= SESSION_ARRIVALS_MAX,
    "a session delivers a fetch's worth of arrivals before it must drop them"
);
const _: () = assert!(
    PRE_KEYS_LOW_COUNT <= PRE_KEYS_COUNT_MAX,
    "a full device is not low on prekeys"
);
const _: () = assert!(ATTACHMENT_MIN_BYTES <= ATTACHMENT_BYTES_MAX);
const _: () = assert!(PUBSUB_MIN_BACKOFF_SECS <= PUBSUB_MAX_BACKOFF_SECS);
const _: () = assert!(BACKUP_MIN_BYTES <= BACKUP_BYTES_MAX);
const _: () = assert!(
    SERVER_REQUEST_TIMEOUT_SECS <= SERVER_GLOBAL_TIMEOUT_SECS
        && ATTACHMENT_TIMEOUT_SECS <= SERVER_GLOBAL_TIMEOUT_SECS
        && BACKUP_TIMEOUT_SECS <= SERVER_GLOBAL_TIMEOUT_SECS,
    "the global timeout caps every route"
);
const _: () = assert!(BLOB_S3_PART_BYTES >= 5 * 1024 * 1024, "S3 refuses parts under 5 MiB");
const _: () = assert!(
    BLOB_LOCAL_PART_BYTES <= BLOB_S3_PART_BYTES,
    "local parts are the small ones"
);
const _: () = assert!(
    AUTH_JWT_GENERATED_SECRET_BYTES * 2 >= AUTH_JWT_SECRET_BYTES_MIN,
    "a generated secret passes the length rule"
);
const _: () = assert!(AUTH_JWT_KEY_ID_BYTES <= 32, "a kid is part of a SHA-256");

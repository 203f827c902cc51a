//! Every bound of the server with its unit and its reason. Options in
//! [`crate::config`] take their defaults from here; bounds that are not
//! options (queue depths, scan slices) live here alone.

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

/// A sender that finds a mesh queue full waits this long before retrying.
pub const MESH_FULL_BACKOFF_US: u64 = 50;

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

/// Attempts of a compare-and-set (device slots, leases, backups) that
/// lose races before the store gives up: each loss means another change
/// landed, so this many in a row only happens under a storm of them.
pub const SCYLLA_CAS_ATTEMPTS_MAX: usize = 32;

/// Threads of the ScyllaDB driver's tokio runtime (see docs/ARCHITECTURE.md
/// for the measurement behind the choice).
pub const SCYLLA_DRIVER_THREADS: usize = 1;

/// Statements per batch of the retention sweep's deletes (one partition):
/// well below the servers' batch size warnings.
pub const SCYLLA_BATCH_ROWS_MAX: usize = 100;

/// Store read threads: reads are short point lookups and small scans.
pub const STORE_READ_THREADS: usize = 2;

/// Default of `--store-mailbox-index-max`: devices plus queued messages
/// indexed in memory per generation (two generations: about 50 MiB at most).
pub const STORE_MAILBOX_INDEX_MAX: usize = 262_144;

/// Pending store jobs (reads or writes) before callers wait.
pub const STORE_QUEUE_DEPTH: usize = 65_536;

/// Writes that share one journal flush at most: bounds the latency one
/// flush adds to the first write of its group.
pub const STORE_GROUP_COMMIT_MAX: usize = 1024;

/// Pending password hashes before callers wait.
pub const PASSWORD_QUEUE_DEPTH: usize = 4096;

/// (Client IP, tier) pairs the rate limiter remembers, for the whole process.
pub const RATE_LIMIT_CLIENTS_MAX: usize = 100_000;

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

const _: () = assert!(HTTP_DISCARD_BYTES_MAX >= HTTP_READ_CHUNK_BYTES);
const _: () = assert!(HTTP_HEADER_BYTES_MAX >= 1024, "a request line needs room");

/// Message targets a shard remembers as devices, per generation (two
/// generations; 16 bytes each).
pub const KNOWN_DEVICES_MAX: usize = 65_536;

/// New messages a gateway session holds before it drops them and reads the
/// store instead (a session whose client reads slowly stops buffering).
pub const SESSION_ARRIVALS_MAX: usize = 256;

/// Payload bytes of the new messages a gateway session holds at most.
pub const SESSION_ARRIVAL_BYTES_MAX: usize = 1 << 20;

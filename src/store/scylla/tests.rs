//! The ScyllaDB store against a real CQL node ([`super::test_node`]): the
//! conformance suite, each check-then-act under concurrency from two
//! sessions (two relay nodes' worth), and the cost of acked messages'
//! tombstones. Without a node these tests are reported ignored, never
//! passed (build.rs sets `cql_node` only where one can be had).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use uuid::Uuid;

use super::session::{Replication, ScyllaOptions};
use super::test_node::{self, Lease};
use super::ScyllaStore;
use crate::auth::refresh::hash_text;
use crate::config::CqlConsistency;
use crate::offload::side_runtime::SideRuntime;
use crate::shard::runtime::{block_on, ChosenDriver};
use crate::store::conformance::{self, new_device};
use crate::store::*;

fn options(keyspace: &str, reset: bool) -> ScyllaOptions {
    let nodes = test_node::nodes().unwrap_or_else(|e| panic!("{e}"));
    ScyllaOptions {
        nodes: nodes.split(',').map(str::to_string).collect(),
        keyspace: keyspace.to_string(),
        replication: Replication::Simple(1),
        local_datacenter: None,
        consistency: CqlConsistency::LocalQuorum,
        credentials: None,
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(20),
        create_schema: true,
        ttl_secs: 30 * 86_400,
        sweep_interval_secs: 300,
        reset_keyspace: reset,
        ping_delay: Duration::ZERO,
    }
}

/// A store on the leased keyspace (emptied first when `reset`).
fn open(lease: &Lease, reset: bool) -> Arc<ScyllaStore> {
    let runtime = SideRuntime::start_named("cql-test", 1).unwrap();
    ScyllaStore::open(options(&lease.keyspace, reset), runtime).unwrap()
}

fn run<F: std::future::Future<Output = ()>>(f: F) {
    block_on(ChosenDriver::Epoll, f).unwrap();
}

/// Goal: the ScyllaDB store passes every conformance case, each on an
/// emptied keyspace.
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_passes_the_conformance_suite() {
    let lease = test_node::lease().unwrap();
    for (name, case) in conformance::CASES {
        let started = Instant::now();
        let store = open(&lease, true);
        run(case(&*store));
        eprintln!("conformance {name} (cql): ok in {:?}", started.elapsed());
    }
}

/// Two sessions on one keyspace: what two relay nodes would be.
fn two_nodes() -> (Lease, Arc<ScyllaStore>, Arc<ScyllaStore>) {
    let lease = test_node::lease().unwrap();
    let first = open(&lease, true);
    let second = open(&lease, false);
    (lease, first, second)
}

/// Goal: 20 concurrent bundle fetches of one device, from two sessions,
/// hand out its 20 one-time prekeys once each, never one twice.
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_concurrent_bundle_fetches_never_share_a_prekey() {
    let (_lease, a, b) = two_nodes();
    run(async {
        let device = new_device(Uuid::now_v7(), 1, "bundles");
        let id = device.device.id;
        a.create_device(device, 10).await.unwrap();
        let keys: Vec<OneTimePreKey> = (100..116)
            .map(|key_id| OneTimePreKey {
                key_id,
                public_key: crate::crypto::public_key::PublicKey([5; 33]),
            })
            .collect();
        let upload = KeyUpload {
            identity: None,
            signed_prekey: SignedPreKey {
                key_id: 4,
                public_key: crate::crypto::public_key::PublicKey([5; 33]),
                signature: crate::crypto::public_key::Signature([1; 64]),
            },
            one_time_prekeys: keys,
            pre_keys_max: 100,
        };
        let outcome = a.upload_keys(id, upload, Box::new(|_| true)).await.unwrap();
        assert_eq!(outcome, Ok(UploadOutcome::Refilled));
        assert_eq!(a.one_time_prekey_count(id).await.unwrap(), 20);
        let fetches = (0..20_u32).map(|i| {
            if i.is_multiple_of(2) {
                a.take_bundle(id)
            } else {
                b.take_bundle(id)
            }
        });
        let bundles = join_all(fetches).await;
        let mut handed: Vec<i32> = bundles
            .into_iter()
            .filter_map(|b| b.unwrap().unwrap().one_time_prekey.map(|k| k.key_id))
            .collect();
        handed.sort_unstable();
        let count = handed.len();
        handed.dedup();
        assert_eq!((count, handed.len()), (20, 20), "each key once: {handed:?}");
        assert_eq!(a.one_time_prekey_count(id).await.unwrap(), 0);
    });
}

/// Goal: two concurrent rotations of one refresh token, from two sessions:
/// one wins, the other is a replay, and the family is revoked (neither new
/// token works).
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_concurrent_rotations_one_wins_and_the_replay_revokes() {
    let (_lease, a, b) = two_nodes();
    run(async {
        for round in 0..5 {
            let (user, family) = (Uuid::now_v7(), Uuid::new_v4());
            let token = format!("r{round}");
            let record = RefreshRecord {
                hash: hash_text(&token),
                user_id: user,
                device_id: None,
                family,
                expires_at_secs: i64::MAX / 4,
            };
            a.insert_refresh(record).await.unwrap();
            let (next_a, next_b) = (format!("{token}a"), format!("{token}b"));
            let (ra, rb) = futures_util::join!(
                a.rotate_refresh(hash_text(&token), hash_text(&next_a), 0, i64::MAX / 4),
                b.rotate_refresh(hash_text(&token), hash_text(&next_b), 0, i64::MAX / 4)
            );
            let outcomes = [ra.unwrap(), rb.unwrap()];
            let rotated = outcomes.iter().filter(|o| matches!(o, Rotation::Rotated(_))).count();
            let reused = outcomes.iter().filter(|o| **o == Rotation::Reused).count();
            assert_eq!((rotated, reused), (1, 1), "{outcomes:?}");
            for next in [next_a, next_b] {
                let again = a.rotate_refresh(hash_text(&next), hash_text("x"), 0, 1).await.unwrap();
                assert_eq!(again, Rotation::Unknown, "the family is revoked");
            }
        }
    });
}

/// Goal: a username, the device limit and a gateway ticket each hold
/// under ten concurrent attempts from two sessions.
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_claims_hold_under_concurrency() {
    let (_lease, a, b) = two_nodes();
    let pick = |i: usize| if i.is_multiple_of(2) { a.clone() } else { b.clone() };
    run(async {
        let users = (0..10).map(|i| {
            let store = pick(i);
            async move {
                let user = UserRecord {
                    id: Uuid::now_v7(),
                    username: "contested".into(),
                    password_hash: "h".into(),
                    created_at_micros: 1,
                    legacy: false,
                };
                let refresh = RefreshRecord {
                    hash: hash_text(&format!("u{i}")),
                    user_id: user.id,
                    device_id: None,
                    family: Uuid::new_v4(),
                    expires_at_secs: i64::MAX / 4,
                };
                store.create_user(user, refresh).await
            }
        });
        let created = join_all(users).await;
        assert_eq!(created.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(created
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::UsernameTaken))));
        let owner = Uuid::now_v7();
        let devices = (0..10).map(|i| {
            let store = pick(i);
            async move {
                store
                    .create_device(new_device(owner, i as i64, &format!("d{i}")), 3)
                    .await
            }
        });
        let outcomes = join_all(devices).await;
        assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 3, "{outcomes:?}");
        assert_eq!(a.devices_of(owner).await.unwrap().len(), 3);
        let (ticket, device) = (Uuid::new_v4(), Uuid::new_v4());
        a.create_ticket(ticket, device, 30).await.unwrap();
        let consumed = join_all((0..10).map(|i| {
            let store = pick(i);
            async move { store.consume_ticket(ticket).await.unwrap() }
        }))
        .await;
        assert_eq!(consumed.iter().flatten().count(), 1, "single use");
    });
}

/// Goal: of two concurrent backup reservations from two sessions, one
/// gets the slot; of two commits, only the slot holder's lands.
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_backup_compare_and_set_holds_under_concurrency() {
    let (_lease, a, b) = two_nodes();
    run(async {
        for _ in 0..5 {
            let device = Uuid::now_v7();
            let (ta, tb) = (Uuid::new_v4(), Uuid::new_v4());
            let (ra, rb) = futures_util::join!(
                a.reserve_backup(device, 0, ta, 1_000, 0),
                b.reserve_backup(device, 0, tb, 1_000, 0)
            );
            let (ra, rb) = (ra.unwrap(), rb.unwrap());
            let won = [ra, rb]
                .iter()
                .filter(|r| matches!(r, Reservation::Reserved { .. }))
                .count();
            assert_eq!(won, 1, "{ra:?} {rb:?}");
            let (ca, cb) = futures_util::join!(a.commit_backup(device, ta), b.commit_backup(device, tb));
            let commits = [ca.unwrap(), cb.unwrap()];
            assert_eq!(
                commits.iter().filter(|c| **c == BackupCommit::Committed(None)).count(),
                1
            );
        }
    });
}

/// Appends `n` messages to `target` from `sender`, `per_call` a call, 8 calls at a time; their
/// ids.
async fn fill(store: &ScyllaStore, target: Uuid, sender: Uuid, n: usize, per_call: usize) -> Vec<Uuid> {
    let call = || {
        let batch = (0..per_call)
            .map(|_| NewMessage {
                target,
                sender_user: Uuid::now_v7(),
                sender_device: sender,
                submission_id: Uuid::new_v4(),
                payload: bytes::Bytes::from_static(&[7; 256]),
                created_at_ms: crate::util::time::now_millis(),
                expires_at_secs: i64::MAX / 4,
                wake_at_ms: None,
            })
            .collect();
        store.append(batch)
    };
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n.div_ceil(per_call * 8) {
        for outcomes in join_all((0..8).map(|_| call())).await {
            ids.extend(outcomes.unwrap().into_iter().filter_map(|o| match o {
                Appended::Stored(q) => Some(q.id),
                _ => None,
            }));
        }
    }
    ids
}

/// The median times of `runs` fetches of `limit` messages from the start of each mailbox,
/// the fetches of the two interleaved (so that the machine's other load weighs on both alike).
async fn median_fetches(store: &ScyllaStore, devices: [Uuid; 2], limit: usize, runs: usize) -> [Duration; 2] {
    let mut times = [Vec::with_capacity(runs), Vec::with_capacity(runs)];
    for _ in 0..runs {
        for (device, times) in devices.iter().zip(times.iter_mut()) {
            let started = Instant::now();
            let got = store.fetch(*device, None, limit, 0).await.unwrap();
            times.push(started.elapsed());
            assert_eq!(got.len(), limit);
        }
    }
    times.map(|mut t| {
        t.sort_unstable();
        t[runs / 2]
    })
}

/// Flushes the test node's memtables (tombstones then live in sstables, as they do in a
/// deployment), where the node is one the tests started.
fn flush_test_node() {
    let (Some(cassandra), Err(_)) = (test_node::cassandra_dir(), std::env::var("OBSCURA_TEST_CQL_NODES")) else {
        return;
    };
    let node = std::env::var_os("OBSCURA_TEST_CQL_STATE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("obscura-cql-tests"))
        .join("node");
    let flushed = std::process::Command::new(cassandra.join("nodetool"))
        .arg(&node)
        .arg("flush")
        .output();
    eprintln!("nodetool flush: {:?}", flushed.map(|o| o.status));
}

/// Goal (issue 13): acks leave no tombstone storm behind. A mailbox that received and acked
/// 100,000 messages fetches a backlog of 100 in at most 1.5 times what a fresh mailbox takes.
/// Method: fill one mailbox with 100,000 messages, ack them all (in acks of 100, as sessions
/// do), flush the node's memtables, queue 100 more; queue 100 in a fresh mailbox; compare the
/// median of 101 fetches of each, interleaved (from the start: what a session's backlog read
/// does).
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_acked_messages_leave_backlog_fetches_fast() {
    let lease = test_node::lease().unwrap();
    let store = open(&lease, true);
    run(async {
        let (busy, fresh, sender) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for (i, id) in [busy, fresh, sender].into_iter().enumerate() {
            let mut device = new_device(Uuid::now_v7(), 1, &format!("tomb{i}"));
            device.device.id = id;
            device.refresh.device_id = Some(id);
            store.create_device(device, 10).await.unwrap();
        }
        let started = Instant::now();
        let ids = fill(&store, busy, sender, 100_000, 100).await;
        eprintln!("100,000 appended in {:?}", started.elapsed());
        let started = Instant::now();
        for chunk in ids.chunks(800) {
            let acks = chunk.chunks(100).map(|ids| store.ack(busy, ids.to_vec()));
            assert_eq!(
                join_all(acks).await.into_iter().map(Result::unwrap).sum::<usize>(),
                chunk.len()
            );
        }
        eprintln!("100,000 acked in {:?}", started.elapsed());
        monoio::time::sleep(Duration::from_millis(500)).await; // the last floor move
        flush_test_node();
        fill(&store, busy, sender, 100, 100).await;
        fill(&store, fresh, sender, 100, 100).await;
        let [acked, new] = median_fetches(&store, [busy, fresh], 100, 101).await;
        eprintln!("backlog of 100: after 100,000 acked {acked:?}, fresh mailbox {new:?}");
        assert!(acked.as_secs_f64() <= 1.5 * new.as_secs_f64(), "{acked:?} vs {new:?}");
    });
}

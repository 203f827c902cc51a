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

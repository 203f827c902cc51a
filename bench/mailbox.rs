//! Mailbox append + ack per message on the embedded store (a temp dir on
//! this machine's disk): batches of 10 appended to one device as one
//! group-committed write, then acked by id as one write (the ids the
//! append answers, which are the ids the gateway delivers). Reported per
//! message.
//! 64 batches are in flight at once, so flushes are shared as under load.
//! Run: `cargo bench --bench mailbox`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use obscura_relay::config::Durability;
use obscura_relay::crypto::public_key::{PublicKey, Signature};
use obscura_relay::shard::runtime::{build, ChosenDriver};
use obscura_relay::store::embedded::{EmbeddedOptions, EmbeddedStore};
use obscura_relay::store::{
    Accounts, Appended, DeviceRecord, Devices, Mailboxes, NewDevice, NewMessage, RefreshRecord, SignedPreKey,
    UserRecord,
};
use uuid::Uuid;

const BATCH: usize = 10;
const IN_FLIGHT: u64 = 64;
const CREATED_AT_MS: u64 = 1_700_000_000_000;

fn new_device() -> NewDevice {
    let (id, user_id) = (Uuid::now_v7(), Uuid::now_v7());
    NewDevice {
        device: DeviceRecord {
            id,
            user_id,
            name: None,
            created_at_micros: 0,
            identity_key: PublicKey([5; 33]),
            registration_id: 1,
        },
        signed_prekey: SignedPreKey {
            key_id: 1,
            public_key: PublicKey([5; 33]),
            signature: Signature([0; 64]),
        },
        one_time_prekeys: Vec::new(),
        refresh: RefreshRecord {
            hash: obscura_relay::auth::refresh::hash_text(&id.to_string()),
            user_id,
            device_id: Some(id),
            family: Uuid::new_v4(),
            expires_at_secs: i64::MAX / 4,
            generation: 0,
            user_scope_generation: 0,
        },
    }
}

/// The account that owns `device`, and its first refresh token.
fn owner_of(device: &NewDevice) -> (UserRecord, RefreshRecord) {
    let user = UserRecord {
        id: device.device.user_id,
        username: "bench".into(),
        password_hash: String::new(),
        created_at_micros: 0,
        legacy: false,
        token_generation: 0,
        user_scope_generation: 0,
    };
    let refresh = RefreshRecord {
        hash: obscura_relay::auth::refresh::hash_text("bench-user"),
        device_id: None,
        ..device.refresh.clone()
    };
    (user, refresh)
}

fn batch(target: Uuid) -> Vec<NewMessage> {
    (0..BATCH)
        .map(|_| NewMessage {
            target,
            sender_user: target,
            sender_device: target,
            submission_id: Uuid::new_v4(),
            payload: bytes::Bytes::from(vec![0xef; 256]),
            created_at_ms: CREATED_AT_MS,
            expires_at_secs: i64::MAX / 4,
            wake_at_ms: Some(CREATED_AT_MS + 2000),
        })
        .collect()
}

fn bench_durability(c: &mut Criterion, durability: Durability) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = EmbeddedOptions {
        durability,
        read_threads: 1,
        faults: Default::default(),
        mailbox_index_max: 1 << 16,
    };
    let (store, _threads) = EmbeddedStore::open(dir.path(), &options).expect("store");
    let mut runtime = build(ChosenDriver::Epoll).expect("runtime");
    let device = new_device();
    let target = device.device.id;
    let (owner, refresh) = owner_of(&device);
    runtime.block_on(store.create_user(owner, refresh)).expect("owner");
    runtime.block_on(store.create_device(device, 10)).expect("device");
    let mut group = c.benchmark_group("mailbox append + ack");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("{durability:?}, batches of {BATCH}"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                let mut done = 0;
                while done < iters {
                    let n = IN_FLIGHT.min(iters - done);
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let store = store.clone();
                            monoio::spawn(async move {
                                let outcomes = store.append(batch(target)).await.expect("append");
                                let ids: Vec<Uuid> = outcomes
                                    .iter()
                                    .filter_map(|o| match o {
                                        Appended::Stored(queued) => Some(queued.id),
                                        _ => None,
                                    })
                                    .collect();
                                store.ack(target, ids).await.expect("ack");
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await;
                    }
                    done += n;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_durability(c, Durability::Fsync);
    bench_durability(c, Durability::Buffered);
}

criterion_group!(benches, bench);
criterion_main!(benches);

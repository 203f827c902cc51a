//! One group-committed store write on the embedded store (a refresh-token
//! insert: a check of its account's row, then four rows in one batch), in
//! a temp dir on this machine's disk.
//!
//! - `fsync, 1 writer`: every write pays its own journal fsync.
//! - `fsync, 64 concurrent writers`: time per write when 64 writes are in
//!   flight at once and share flushes (the group commit at work).
//! - `buffered, 1 writer`: the journal is written to the OS, not fsynced.
//!
//! Run: `cargo bench --bench group_commit`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use obscura_relay::auth::refresh::hash_text;
use obscura_relay::config::Durability;
use obscura_relay::shard::runtime::{build, ChosenDriver};
use obscura_relay::store::embedded::{EmbeddedOptions, EmbeddedStore};
use obscura_relay::store::{Accounts, RefreshRecord, RefreshTokens, UserRecord};
use uuid::Uuid;

fn record(i: u64, user_id: Uuid) -> RefreshRecord {
    RefreshRecord {
        hash: hash_text(&format!("{i}-{}", Uuid::new_v4())),
        user_id,
        device_id: None,
        family: Uuid::new_v4(),
        expires_at_secs: 1_900_000_000,
        generation: 0,
        user_scope_generation: 0,
    }
}

/// The account every token of the bench belongs to.
fn account() -> UserRecord {
    UserRecord {
        id: Uuid::now_v7(),
        username: "bench".into(),
        password_hash: String::new(),
        created_at_micros: 0,
        legacy: false,
        token_generation: 0,
        user_scope_generation: 0,
    }
}

fn writes(c: &mut Criterion, name: &str, durability: Durability, concurrency: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = EmbeddedOptions {
        durability,
        read_threads: 1,
        faults: Default::default(),
        mailbox_index_max: 1 << 16,
    };
    let (store, _threads) = EmbeddedStore::open(dir.path(), &options).expect("store");
    let mut runtime = build(ChosenDriver::Epoll).expect("runtime");
    let user = account();
    let owner = user.id;
    runtime
        .block_on(store.create_user(user, record(0, owner)))
        .expect("account");
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                let mut done = 0;
                while done < iters {
                    let batch = concurrency.min(iters - done);
                    let mut handles = Vec::new();
                    for i in 0..batch {
                        let store = store.clone();
                        handles.push(monoio::spawn(async move {
                            store.insert_refresh(record(i, owner)).await.is_ok()
                        }));
                    }
                    for handle in handles {
                        assert!(handle.await, "store write failed");
                    }
                    done += batch;
                }
                start.elapsed()
            })
        })
    });
}

fn bench(c: &mut Criterion) {
    writes(c, "store write (fsync, 1 writer)", Durability::Fsync, 1);
    writes(c, "store write (fsync, 64 concurrent writers)", Durability::Fsync, 64);
    writes(c, "store write (buffered, 1 writer)", Durability::Buffered, 1);
}

criterion_group!(benches, bench);
criterion_main!(benches);

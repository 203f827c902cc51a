//! The per-request check that an access token is not revoked
//! (`node::revocations`): one shard's cached view of the process's recent
//! revocations, with none (the common case), and with 10,000 device
//! deletions lately (each revokes the device and its account's user-scoped
//! tokens): a device token of another account, and one of a deleted
//! device. The caller's token is device-scoped, so a check looks up both
//! its account and its device. It runs on every authenticated request after the JWT
//! verification (`jwt_verify`). Run: `cargo bench --bench revocation_check`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use obscura_relay::auth::tokens::Principal;
use obscura_relay::node::revocations::{RevocationView, Revocations};
use obscura_relay::store::{DeviceDeletion, Revocation};
use uuid::Uuid;

const NOW_MS: i64 = 1_700_000_000_000;

fn bench(c: &mut Criterion) {
    let shared = Revocations::new(60_000);
    let view = RevocationView::default();
    let token = |user_id, device_id| Principal {
        user_id,
        device_id: Some(device_id),
        generation: 0,
        user_scope: 0,
    };
    let caller = token(Uuid::now_v7(), Uuid::now_v7());
    c.bench_function("revocation check (no recent revocation)", |b| {
        b.iter(|| black_box(view.admits(&shared, black_box(&caller))))
    });
    let deletion = DeviceDeletion {
        user_scope_generation: 1,
        at_ms: NOW_MS,
    };
    let deleted: Vec<(Uuid, Uuid)> = (0..10_000).map(|_| (Uuid::now_v7(), Uuid::now_v7())).collect();
    let revoked: Vec<Revocation> = deleted
        .iter()
        .flat_map(|(user, device)| deletion.revocations(*user, *device))
        .collect();
    shared.apply(&revoked, NOW_MS);
    c.bench_function("revocation check (10,000 revoked, caller not)", |b| {
        b.iter(|| black_box(view.admits(&shared, black_box(&caller))))
    });
    let (user, device) = deleted[5_000];
    let victim = token(user, device);
    c.bench_function("revocation check (10,000 revoked, caller too)", |b| {
        b.iter(|| black_box(view.admits(&shared, black_box(&victim))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! The per-request check that an access token is not revoked
//! (`node::revocations`): one shard's cached view of the process's recent
//! revocations, with none (the common case), and with 10,000 accounts
//! revoked lately (a token of another account, and one of a revoked
//! account). It runs on every authenticated request after the JWT
//! verification (`jwt_verify`). Run: `cargo bench --bench revocation_check`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use obscura_relay::node::revocations::{RevocationView, Revocations};
use obscura_relay::store::{Revocation, TokenFloor};
use uuid::Uuid;

const NOW_MS: i64 = 1_700_000_000_000;

fn bench(c: &mut Criterion) {
    let shared = Revocations::new(60_000);
    let view = RevocationView::default();
    let caller = Uuid::now_v7();
    c.bench_function("revocation check (no recent revocation)", |b| {
        b.iter(|| black_box(view.admits(&shared, black_box(caller), 0)))
    });
    let revoked: Vec<Revocation> = (0..10_000)
        .map(|_| Revocation {
            user_id: Uuid::now_v7(),
            floor: TokenFloor::Generation(1),
            at_ms: NOW_MS,
        })
        .collect();
    shared.apply(&revoked, NOW_MS);
    c.bench_function("revocation check (10,000 revoked, caller not)", |b| {
        b.iter(|| black_box(view.admits(&shared, black_box(caller), 0)))
    });
    let victim = revoked[5_000].user_id;
    c.bench_function("revocation check (10,000 revoked, caller too)", |b| {
        b.iter(|| black_box(view.admits(&shared, black_box(victim), 0)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

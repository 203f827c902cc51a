//! Access-token verification (HS256 signature, exp with leeway, claims
//! decode), done on the shard for every authenticated request; with one key,
//! and during a rotation (the key picked by the token's `kid`).
//! Target: under 5 µs. Run: `cargo bench --bench jwt_verify`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use obscura_relay::auth::tokens::{Principal, TokenKeys};
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let keys = TokenKeys::new("a-production-length-secret-of-32b", 900);
    let principal = Principal {
        user_id: Uuid::now_v7(),
        device_id: Some(Uuid::now_v7()),
        generation: 1,
        user_scope: 0,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let token = keys.issue(principal, now).token;
    c.bench_function("jwt verify (device-scoped)", |b| {
        b.iter(|| black_box(keys.verify(black_box(&token)).is_ok()))
    });
    // During a rotation: the key is picked by the token's `kid`.
    let rotating = TokenKeys::rotating(
        "a-production-length-secret-of-32b",
        &["the-previous-production-secret-32b"],
        900,
    );
    let previous = TokenKeys::new("the-previous-production-secret-32b", 900);
    let old_token = previous.issue(principal, now).token;
    c.bench_function("jwt verify (rotating, previous key)", |b| {
        b.iter(|| black_box(rotating.verify(black_box(&old_token)).is_ok()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

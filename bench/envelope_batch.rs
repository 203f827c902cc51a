//! Packing a fetch of 50 queued messages of 256 bytes into EnvelopeBatch
//! frames (prost encode), what the delivery pump does per store fetch.
//! Run: `cargo bench --bench envelope_batch`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use obscura_relay::gateway::delivery::batch_frames;
use obscura_relay::store::StoredMessage;
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let messages: Vec<StoredMessage> = (0..50u64)
        .map(|seq| StoredMessage {
            seq,
            id: Uuid::now_v7(),
            sender_user: Uuid::now_v7(),
            sender_device: Uuid::now_v7(),
            payload: bytes::Bytes::from(vec![0xab; 256]),
            created_at_ms: 1_700_000_000_000 + seq,
        })
        .collect();
    let mut group = c.benchmark_group("envelope batch encode");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("50 x 256 B", |b| {
        b.iter(|| black_box(batch_frames(black_box(&messages), 8 * 1024 * 1024)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

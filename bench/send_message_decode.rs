//! Decoding a `SendMessageRequest` of 10 submissions of 256 bytes (the load
//! workload's batch), the first step of every POST /v1/messages.
//! Run: `cargo bench --bench send_message_decode`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use obscura_relay::proto::send_message_request::Submission;
use obscura_relay::proto::SendMessageRequest;
use prost::Message;
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let request = SendMessageRequest {
        messages: (0..10)
            .map(|_| Submission {
                submission_id: Uuid::new_v4().as_bytes().to_vec().into(),
                device_id: Uuid::now_v7().as_bytes().to_vec().into(),
                message: vec![0xcd; 256].into(),
            })
            .collect(),
    };
    let bytes = request.encode_to_vec();
    let mut group = c.benchmark_group("send message request decode");
    group.throughput(Throughput::Elements(10));
    group.bench_function("10 x 256 B", |b| {
        b.iter(|| black_box(SendMessageRequest::decode(black_box(bytes.as_slice())).map(|r| r.messages.len())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

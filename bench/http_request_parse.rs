//! Request parse + route: the work every request does before its handler
//! (httparse into a `RequestHead` with our limits, then the route table).
//! Target: under 1 µs. Run: `cargo bench --bench http_request_parse`.

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use obscura_relay::api::routes::resolve;
use obscura_relay::http::request::parse_head;
use obscura_relay::http::HttpLimits;

const REQUEST: &[u8] = b"GET /v1/devices/0192e0b4-0000-7000-8000-000000000001 HTTP/1.1\r\n\
Host: relay.example.org\r\n\
User-Agent: obscura-android/2.3.1\r\n\
Accept: application/json\r\n\
Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIwMTkyZTBiNC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJleHAiOjE3OTU0MzI5NjJ9.cEt2Pnr_AYvO8yJCx3u5iQ3g_G1GJFEHm_hVFZoE-eM\r\n\
x-request-id: 3f1c2a9e-1111-4222-8333-944455556666\r\n\
Connection: keep-alive\r\n\r\n";

fn bench(c: &mut Criterion) {
    let limits = HttpLimits {
        header_bytes_max: 16 * 1024,
        headers_count_max: 100,
        head_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(60),
    };
    c.bench_function("request parse + route", |b| {
        b.iter(|| {
            let (head, _) = parse_head(black_box(REQUEST), &limits)
                .ok()
                .flatten()
                .expect("complete head");
            black_box(resolve(&head.method, &head.path))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

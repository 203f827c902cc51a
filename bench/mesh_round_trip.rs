//! One mesh round trip: shard 0 asks shard 1 to run an empty job and awaits
//! the answer (push to shard 1's inbox, wake, run, oneshot back, wake).
//!
//! - **hot**: 64 calls are in flight at once, so both shards stay busy with
//!   mesh traffic and neither push finds a parked thread; reported per round
//!   trip (total time / calls). This is the cost of the queues, the wakers
//!   and the oneshot under load. Target: under 2 µs.
//! - **cold**: one call at a time, each after a 200 µs pause (not measured)
//!   in which shard 1 parks in the kernel, so the wake-up of a parked
//!   runtime is counted both ways. The server never busy-polls to avoid it.
//!
//! Run: `cargo bench --bench mesh_round_trip` (epoll driver on both shards).

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use obscura_relay::shard::mesh::{Mesh, MeshEndpoint};
use obscura_relay::shard::runtime::{block_on, build, ChosenDriver, ShardRuntime};

struct Ctx;

const IN_FLIGHT: u64 = 64;

fn spawn_target(mesh: Arc<Mesh<Ctx>>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = block_on(ChosenDriver::Epoll, async move {
            let endpoint = mesh.connect(1, Rc::new(Ctx));
            monoio::spawn(endpoint.serve());
            while !stop.load(Ordering::Relaxed) {
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    })
}

/// `iters` round trips with `in_flight` calls outstanding at once.
async fn calls(endpoint: &Rc<MeshEndpoint<Ctx>>, iters: u64, in_flight: u64) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < iters {
        let n = in_flight.min(iters - done);
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let endpoint = endpoint.clone();
                monoio::spawn(async move { endpoint.call(1, |_| async {}).await.is_ok() })
            })
            .collect();
        for task in tasks {
            assert!(task.await, "mesh call failed");
        }
        done += n;
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let mesh = Mesh::<Ctx>::new(2, 1024);
    let stop = Arc::new(AtomicBool::new(false));
    let target = spawn_target(mesh.clone(), stop.clone());
    let mut runtime: ShardRuntime = build(ChosenDriver::Epoll).expect("runtime");
    let endpoint = runtime.block_on(async { mesh.connect(0, Rc::new(Ctx)) });
    c.bench_function("mesh round trip (hot: 64 in flight)", |b| {
        b.iter_custom(|iters| runtime.block_on(calls(&endpoint, iters, IN_FLIGHT)))
    });
    c.bench_function("mesh round trip (cold: target parked)", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    monoio::time::sleep(Duration::from_micros(200)).await;
                    total += calls(&endpoint, 1, 1).await;
                }
                total
            })
        })
    });
    stop.store(true, Ordering::Relaxed);
    let _ = target.join();
}

criterion_group!(benches, bench);
criterion_main!(benches);

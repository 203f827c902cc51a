//! One mesh round trip: shard 0 asks shard 1 to run an empty job and awaits
//! the answer (push to shard 1's inbox, wake, run, oneshot back, wake).
//!
//! - **hot**: both shards are busy (a task on each keeps yielding), so
//!   neither the push nor the answer finds a parked thread; this is the cost
//!   of the queues, the wakers and the oneshot. Target: under 2 µs.
//! - **cold**: shard 1 is parked in the kernel between calls (each call
//!   follows a 200 µs pause that is not measured), so the wake-up of a
//!   parked runtime is counted. The server never busy-polls to avoid it.
//!
//! Run: `cargo bench --bench mesh_round_trip` (epoll driver on both shards).

#![allow(missing_docs)] // criterion_group! generates an undocumented function

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use obscura_relay::shard::mesh::Mesh;
use obscura_relay::shard::runtime::{block_on, ChosenDriver};

struct Ctx;

/// Keeps the current runtime busy until `stop`: the stand-in for a shard
/// with other work queued.
async fn stay_busy(stop: Arc<AtomicBool>) {
    let spins = Rc::new(Cell::new(0u64));
    while !stop.load(Ordering::Relaxed) {
        spins.set(spins.get() + 1);
        monoio::time::sleep(Duration::ZERO).await;
    }
}

fn spawn_target(mesh: Arc<Mesh<Ctx>>, busy: bool, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = block_on(ChosenDriver::Epoll, async move {
            let endpoint = mesh.connect(1, Rc::new(Ctx));
            monoio::spawn(endpoint.serve());
            if busy {
                stay_busy(stop).await;
            } else {
                while !stop.load(Ordering::Relaxed) {
                    monoio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    })
}

fn round_trips(c: &mut Criterion, name: &str, busy: bool, pause: Duration) {
    let mesh = Mesh::<Ctx>::new(2, 1024);
    let stop = Arc::new(AtomicBool::new(false));
    let target = spawn_target(mesh.clone(), busy, stop.clone());
    let mut runtime = obscura_relay::shard::runtime::build(ChosenDriver::Epoll).expect("runtime");
    let endpoint = runtime.block_on(async { mesh.connect(0, Rc::new(Ctx)) });
    let stop_sender = Arc::new(AtomicBool::new(false));
    if busy {
        let stop_sender = stop_sender.clone();
        runtime.block_on(async move {
            monoio::spawn(stay_busy(stop_sender));
        });
    }
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    if !pause.is_zero() {
                        monoio::time::sleep(pause).await;
                    }
                    let start = Instant::now();
                    let _ = endpoint.call(1, |_| async {}).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    stop.store(true, Ordering::Relaxed);
    stop_sender.store(true, Ordering::Relaxed);
    runtime.block_on(monoio::time::sleep(Duration::from_millis(1)));
    let _ = target.join();
}

fn bench(c: &mut Criterion) {
    round_trips(c, "mesh round trip (hot: target busy)", true, Duration::ZERO);
    round_trips(
        c,
        "mesh round trip (cold: target parked)",
        false,
        Duration::from_micros(200),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

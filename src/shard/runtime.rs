//! Building and pinning shard runtimes: one monoio runtime per thread, with
//! timers enabled, on io_uring or epoll as `--io-driver` says. Shard `i` is
//! pinned to the `i % n`-th CPU this process may run on, so `--shards 4`
//! works on 2 cores. Every shard uses the same driver.

use std::future::Future;
use std::io;

use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::IoDriver;
use crate::limits;

/// The runtime type of every shard.
pub type ShardRuntime = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// The driver actually chosen for `requested` on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenDriver {
    /// io_uring.
    Uring,
    /// epoll.
    Epoll,
}

/// Resolves `auto` by probing io_uring once.
pub fn choose_driver(requested: IoDriver) -> io::Result<ChosenDriver> {
    let uring = monoio::utils::detect_uring();
    match requested {
        IoDriver::Auto if uring => Ok(ChosenDriver::Uring),
        IoDriver::Auto | IoDriver::Epoll => Ok(ChosenDriver::Epoll),
        IoDriver::Uring if uring => Ok(ChosenDriver::Uring),
        IoDriver::Uring => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "--io-driver uring: io_uring is not available (kernel or seccomp); use auto or epoll",
        )),
    }
}

/// Builds one runtime on the chosen driver. Call on the thread that runs it.
pub fn build(driver: ChosenDriver) -> io::Result<ShardRuntime> {
    Ok(match driver {
        ChosenDriver::Uring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(limits::IO_URING_ENTRIES)
            .enable_timer()
            .build()?
            .into(),
        ChosenDriver::Epoll => RuntimeBuilder::<LegacyDriver>::new().enable_timer().build()?.into(),
    })
}

/// Runs `future` to completion on a fresh runtime of `driver`.
pub fn block_on<F: Future>(driver: ChosenDriver, future: F) -> io::Result<F::Output> {
    let mut runtime = build(driver)?;
    Ok(runtime.block_on(future))
}

/// Pins the calling thread to `cpu`. Failure is logged, not fatal: an
/// unpinned shard is slower, not wrong.
pub fn pin_current_thread(cpu: usize) {
    // SAFETY: as in `crate::util::cpus::allowed_cpus`; the set is initialised before use.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result != 0 {
        tracing::warn!(cpu, error = %io::Error::last_os_error(), "could not pin shard thread");
    }
}

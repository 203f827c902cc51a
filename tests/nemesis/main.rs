//! The nemesis (issue 21, "Trust the cluster"): a Jepsen-style run of a whole deployment under
//! faults, and the checker of what its clients saw.
//!
//! `cargo test --test nemesis` runs the checker's self-tests (histories made by hand, one per
//! kind of violation) and the schedule's. The real run is a trial only when
//! `OBSCURA_NEMESIS_SEED` is set; `OBSCURA_NEMESIS_SECS` (default 240) bounds its faults, and
//! `OBSCURA_NEMESIS_SKEW_SECS` (default 2, 0 for none) sets the skewed relay's offset:
//!
//! ```text
//! OBSCURA_NEMESIS_SEED=42 OBSCURA_NEMESIS_SECS=1200 cargo test --test nemesis
//! ```
//!
//! It starts three Cassandra nodes from `../shared/cassandra` (replication factor 3,
//! LOCAL_QUORUM), one redis-server and three relays on one keyspace (one of them with its wall
//! clock 2 s off through libfaketime, every periodic job at a 1 s period), drives clients
//! through all of them (`workload`), injects the seed's faults (`schedule`, `run`), then checks
//! the recorded history (`checker`) and prints the seed, the schedule as run, the figures and
//! the first violation. docs/OPERATIONS.md "The nemesis" lists what it covers and what not.
//!
//! A `harness = false` target on libtest-mimic: trials are made at run time, and it lists and
//! filters like libtest (`cargo nextest list`, `cargo test -- --list`).

// The integration suite's harness; its `#[test]`s (and what only they use) are not built here.
#[allow(unused_imports)]
#[path = "../integration/common/mod.rs"]
mod common;

mod checker;
mod history;
mod schedule;
mod selftest;

use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = selftest::all()
        .into_iter()
        .map(|(name, test)| Trial::test(name, move || test().map_err(Into::into)))
        .collect();
    trials.push(Trial::test("schedule::schedule_is_a_function_of_the_seed", || {
        schedule::schedule_is_a_function_of_the_seed().map_err(Into::into)
    }));
    libtest_mimic::run(&args, trials).exit();
}

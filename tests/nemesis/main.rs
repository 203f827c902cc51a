//! The nemesis (issue 21, "Trust the cluster"): a Jepsen-style run of a whole deployment under
//! faults, and the checker of what its clients saw.
//!
//! `cargo test --test nemesis` runs the checker's self-tests (histories made by hand, one per
//! kind of violation) and the schedule's. The real run is a trial only when
//! `OBSCURA_NEMESIS_SEED` is set; `OBSCURA_NEMESIS_SECS` (default 240) bounds its faults, and
//! `OBSCURA_NEMESIS_SKEW_SECS` (default 2, 0 for none) sets the skewed relay's offset and
//! `OBSCURA_NEMESIS_JOB_SECS` (default 1) the period of the relays' periodic jobs:
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
mod run;
mod schedule;
mod selftest;
mod workload;

use libtest_mimic::{Arguments, Trial};

/// Default length of a real run's fault phase, seconds.
const DEFAULT_SECS: u64 = 240;
/// Default clock offset of the skewed relay, seconds (`OBSCURA_NEMESIS_SKEW_SECS`; 0: none).
const DEFAULT_SKEW_SECS: i64 = 2;

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = selftest::all()
        .into_iter()
        .map(|(name, test)| Trial::test(name, move || test().map_err(Into::into)))
        .collect();
    trials.push(Trial::test("schedule::schedule_is_a_function_of_the_seed", || {
        schedule::schedule_is_a_function_of_the_seed().map_err(Into::into)
    }));
    if let Ok(seed) = std::env::var("OBSCURA_NEMESIS_SEED") {
        trials.push(real_run(&seed));
    }
    libtest_mimic::run(&args, trials).exit();
}

/// The real run's trial, `nemesis::run`: a failing one if the variables do not parse.
fn real_run(seed: &str) -> Trial {
    let secs = std::env::var("OBSCURA_NEMESIS_SECS").unwrap_or_else(|_| DEFAULT_SECS.to_string());
    let skew = std::env::var("OBSCURA_NEMESIS_SKEW_SECS").unwrap_or_else(|_| DEFAULT_SKEW_SECS.to_string());
    let jobs = std::env::var("OBSCURA_NEMESIS_JOB_SECS").unwrap_or_else(|_| "1".to_string());
    let parsed = (
        seed.trim().parse(),
        secs.trim().parse(),
        skew.trim().parse::<i64>(),
        jobs.trim().parse::<u64>(),
    );
    let settings = match parsed {
        (Ok(seed), Ok(secs), Ok(skew_secs), Ok(job_secs)) if job_secs > 0 => Ok(run::Settings {
            seed,
            secs,
            skew_secs: skew_secs.abs(),
            job_secs,
        }),
        _ => Err(format!(
            "OBSCURA_NEMESIS_SEED={seed:?}, OBSCURA_NEMESIS_SECS={secs:?}, OBSCURA_NEMESIS_SKEW_SECS={skew:?} \
             and OBSCURA_NEMESIS_JOB_SECS={jobs:?} must be whole numbers (the last above 0)"
        )),
    };
    Trial::test("nemesis::run", move || {
        let settings = settings?;
        run::run(settings).map_err(|e| e.to_string().into())
    })
}

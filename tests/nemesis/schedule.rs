//! The fault schedule, drawn from the seed: which relay runs with a skewed clock, and a
//! sequence of faults (each healed before the next starts), every kind at least once early on.

use std::fmt;

/// SplitMix64: a small seeded generator (the workload and the schedule need no more).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A generator for another purpose, independent of this one's later draws.
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng(self.next_u64() ^ salt.wrapping_mul(0xd6e8_feb8_6659_fd93))
    }
}

/// One fault; relay and Cassandra node numbers are 0-based relay indices and 1-based
/// Cassandra node numbers (127.0.0.N).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL a relay, keep it down `down_secs`, start it again on its data dir.
    RelayKill { relay: usize, down_secs: u64 },
    /// SIGSTOP a relay for `secs`, then SIGCONT.
    RelayPause { relay: usize, secs: u64 },
    /// SIGTERM a relay (it drains and exits 0), keep it down `down_secs`, start it again.
    RelayDrain { relay: usize, down_secs: u64 },
    /// SIGKILL redis-server, keep it down `down_secs`, start it again (empty).
    RedisRestart { down_secs: u64 },
    /// SIGKILL one Cassandra node, keep it down `down_secs`, start it again on its data.
    CassandraKill { node: usize, down_secs: u64 },
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::RelayKill { .. } => "relay-kill",
            Fault::RelayPause { .. } => "relay-pause",
            Fault::RelayDrain { .. } => "relay-drain",
            Fault::RedisRestart { .. } => "redis-restart",
            Fault::CassandraKill { .. } => "cassandra-kill",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::RelayKill { relay, down_secs } => write!(f, "relay-kill relay {relay}, down {down_secs} s"),
            Fault::RelayPause { relay, secs } => write!(f, "relay-pause relay {relay} for {secs} s"),
            Fault::RelayDrain { relay, down_secs } => write!(f, "relay-drain relay {relay}, down {down_secs} s"),
            Fault::RedisRestart { down_secs } => write!(f, "redis-restart, down {down_secs} s"),
            Fault::CassandraKill { node, down_secs } => {
                write!(f, "cassandra-kill node 127.0.0.{node}, down {down_secs} s")
            }
        }
    }
}

/// The skewed relay and its wall-clock offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skew {
    pub relay: usize,
    /// Seconds, +2 or -2.
    pub offset_secs: i64,
}

/// A planned fault: it starts `gap_secs` after the previous one healed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub gap_secs: u64,
    pub fault: Fault,
}

/// The whole plan of a run.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub skew: Skew,
    pub faults: Vec<Planned>,
}

/// Kinds of faults, in the order of the first permutation.
const KINDS: usize = 5;

/// Draws the schedule of `seed` for `relays` relays and `cql_nodes` Cassandra nodes: enough
/// faults for `secs` seconds (the run stops starting new ones when its time is up).
pub fn draw(seed: u64, relays: usize, cql_nodes: usize, secs: u64) -> Schedule {
    let mut rng = Rng::new(seed).fork(1);
    let skew = Skew {
        relay: rng.below(relays),
        offset_secs: if rng.below(2) == 0 { 2 } else { -2 },
    };
    // Every kind once in a seeded order, then any kind; at least one fault per 5 s planned.
    let mut order: Vec<usize> = (0..KINDS).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let count = KINDS + (secs / 5) as usize;
    let faults = (0..count)
        .map(|i| {
            let kind = if i < KINDS { order[i] } else { rng.below(KINDS) };
            Planned {
                gap_secs: rng.range(2, 8),
                fault: fault_of(kind, &mut rng, relays, cql_nodes),
            }
        })
        .collect();
    Schedule { skew, faults }
}

fn fault_of(kind: usize, rng: &mut Rng, relays: usize, cql_nodes: usize) -> Fault {
    match kind {
        0 => Fault::RelayKill {
            relay: rng.below(relays),
            down_secs: rng.range(0, 4),
        },
        1 => Fault::RelayPause {
            relay: rng.below(relays),
            secs: rng.range(3, 15),
        },
        2 => Fault::RelayDrain {
            relay: rng.below(relays),
            down_secs: rng.range(0, 3),
        },
        3 => Fault::RedisRestart {
            down_secs: rng.range(0, 4),
        },
        _ => Fault::CassandraKill {
            node: 1 + rng.below(cql_nodes),
            down_secs: rng.range(3, 12),
        },
    }
}

pub fn schedule_is_a_function_of_the_seed() -> Result<(), String> {
    let (a, b) = (draw(42, 3, 3, 240), draw(42, 3, 3, 240));
    if a.faults != b.faults || a.skew != b.skew {
        return Err("one seed drew two schedules".into());
    }
    let mut kinds: Vec<&str> = a.faults.iter().take(KINDS).map(|p| p.fault.kind()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.len() != KINDS {
        return Err(format!("the first {KINDS} faults are not one of each kind: {kinds:?}"));
    }
    if draw(43, 3, 3, 240).faults == a.faults {
        return Err("two seeds drew one schedule".into());
    }
    Ok(())
}

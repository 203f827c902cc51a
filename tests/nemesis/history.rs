//! What a nemesis run records: every try of every submission, every envelope a receiver got,
//! every one-time prekey handed out, every ticket redemption and every fault. Plain data, so
//! the checker is a pure function of it and its self-tests build histories by hand.

/// Milliseconds since the start of the run (the test process's monotonic clock).
pub type Ms = u64;

/// How one try of a `POST /v1/messages` ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TryOutcome {
    /// 200: the indices (into `Submission::targets`) the response reported as failed.
    Ok { failed: Vec<usize> },
    /// Any other status. A 5xx is indeterminate (it may have committed); a 4xx is a refusal.
    Status(u16),
    /// No answer: a timeout, a reset, a refused connection. Indeterminate.
    Error(String),
}

/// One try of a submission, through one relay node.
#[derive(Clone, Debug)]
pub struct Try {
    pub node: usize,
    pub start: Ms,
    pub end: Ms,
    pub outcome: TryOutcome,
}

/// One `POST /v1/messages` as the client saw it: one `Idempotency-Key`, the same body on every
/// try, one payload per target device (unique in the run).
#[derive(Clone, Debug)]
pub struct Submission {
    pub sender: usize,
    pub key: String,
    /// `(target device, payload)`.
    pub targets: Vec<(usize, String)>,
    pub tries: Vec<Try>,
}

impl Submission {
    /// When the first try began.
    pub fn began(&self) -> Ms {
        self.tries.first().map_or(0, |t| t.start)
    }

    /// The first 200 answer: when it came and which targets it reported as failed.
    pub fn answered(&self) -> Option<(Ms, &[usize])> {
        self.tries.iter().find_map(|t| match &t.outcome {
            TryOutcome::Ok { failed } => Some((t.end, failed.as_slice())),
            _ => None,
        })
    }

    /// The payloads the server promised to deliver (answered 200, not reported failed).
    pub fn promised(&self) -> Vec<&(usize, String)> {
        match self.answered() {
            Some((_, failed)) => self
                .targets
                .iter()
                .enumerate()
                .filter(|(i, _)| !failed.contains(i))
                .map(|(_, t)| t)
                .collect(),
            None => Vec::new(),
        }
    }
}

/// One envelope as a receiver got it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub device: usize,
    pub payload: String,
    pub message_id: Vec<u8>,
    pub node: usize,
    pub at: Ms,
    /// Position in everything this device's receiver got, across reconnects.
    pub seq: u64,
    /// Got by the fresh socket of the final drain, after the receivers stopped: the live
    /// sockets had not got it by then.
    pub final_drain: bool,
}

/// One bundle fetch's one-time prekey for one device (null keys are not recorded).
#[derive(Clone, Debug)]
pub struct Handout {
    pub device: usize,
    pub key_id: i64,
    pub node: usize,
    pub at: Ms,
}

/// One handshake with a ticket.
#[derive(Clone, Debug)]
pub struct Redemption {
    pub ticket: String,
    /// The relay that issued the ticket.
    pub issued_by: usize,
    pub node: usize,
    pub at: Ms,
    /// 101: a socket was opened with it.
    pub upgraded: bool,
}

/// A fault the nemesis injected, with how it was seen to take effect.
#[derive(Clone, Debug)]
pub struct FaultEvent {
    pub at: Ms,
    pub until: Ms,
    pub kind: &'static str,
    pub detail: String,
    /// Whether the check that it happened (a process state, a closed port…) passed.
    pub verified: bool,
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub submissions: Vec<Submission>,
    pub deliveries: Vec<Delivery>,
    pub handouts: Vec<Handout>,
    pub redemptions: Vec<Redemption>,
    pub faults: Vec<FaultEvent>,
}

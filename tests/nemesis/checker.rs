//! The checker: a recorded [`History`] in, violations and figures out. Pure: no clock, no I/O.
//!
//! Violations:
//! - `Lost`: a payload of a submission answered 200 (and not reported failed) that its target
//!   device never got. The workload keeps clear of the drops the contract allows (inbox limit,
//!   expiry, takeover, deleted devices), so there is no exception.
//! - `Reordered`: for one sender and one target device, a submission whose first try began
//!   more than `skew bound` after another one was answered, first delivered before it.
//! - `DuplicateKey`: one payload (one `Idempotency-Key` and target device) delivered under two
//!   message ids, i.e. stored twice. The same message id again (a lost ack) is a redelivery.
//! - `PrekeyTwice`: one one-time prekey of one device handed out to two fetches.
//! - `TicketTwice`: one ticket that opened two sockets.
//! - `Phantom`: a payload delivered that no submission carried, or whose every try was refused
//!   with a 4xx (nothing was stored).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::history::{History, Ms, TryOutcome};

/// One violation, with what identifies it in the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    Lost {
        sender: usize,
        key: String,
        device: usize,
        payload: String,
        answered_at: Ms,
        /// Every try: relay node, start ms and outcome.
        tries: Vec<(usize, Ms, String)>,
    },
    Reordered {
        sender: usize,
        device: usize,
        earlier: String,
        earlier_answered: Ms,
        later: String,
        later_began: Ms,
        /// When and through which relay the later one was first delivered.
        later_delivered: (Ms, usize),
    },
    DuplicateKey {
        device: usize,
        payload: String,
        message_ids: usize,
    },
    PrekeyTwice {
        device: usize,
        key_id: i64,
        handouts: Vec<(usize, Ms)>,
    },
    TicketTwice {
        ticket: String,
        issued_by: usize,
        /// Node and ms of each redemption that opened a socket.
        nodes: Vec<(usize, Ms)>,
    },
    Phantom {
        device: usize,
        payload: String,
    },
}

impl Violation {
    /// A short name of its kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::Lost { .. } => "lost",
            Violation::Reordered { .. } => "reordered",
            Violation::DuplicateKey { .. } => "duplicate-key",
            Violation::PrekeyTwice { .. } => "prekey-twice",
            Violation::TicketTwice { .. } => "ticket-twice",
            Violation::Phantom { .. } => "phantom",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Lost { sender, key, device, payload, answered_at, tries } => write!(
                f,
                "lost: sender {sender} key {key} answered 200 at {answered_at} ms, device {device} never got \
                 {payload}; tries (node, ms, outcome): {tries:?}"
            ),
            Violation::Reordered { sender, device, earlier, earlier_answered, later, later_began, later_delivered } => {
                write!(
                    f,
                    "reordered: sender {sender} to device {device}: {later} (began {later_began} ms, delivered at \
                     {} ms through relay {}) was delivered before {earlier} (answered {earlier_answered} ms)",
                    later_delivered.0, later_delivered.1
                )
            }
            Violation::DuplicateKey { device, payload, message_ids } => write!(
                f,
                "duplicate-key: device {device} got {payload} under {message_ids} different message ids"
            ),
            Violation::PrekeyTwice { device, key_id, handouts } => write!(
                f,
                "prekey-twice: one-time prekey {key_id} of device {device} handed out {} times (node, ms): {handouts:?}",
                handouts.len()
            ),
            Violation::TicketTwice { ticket, issued_by, nodes } => write!(
                f,
                "ticket-twice: ticket {ticket} issued by relay {issued_by} opened a socket on (relay, ms) {nodes:?}"
            ),
            Violation::Phantom { device, payload } => {
                write!(f, "phantom: device {device} got {payload}, which no accepted submission carried")
            }
        }
    }
}

/// Figures of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    pub submissions: usize,
    pub answered: usize,
    /// Neither answered nor refused: every try a 5xx or no answer.
    pub indeterminate: usize,
    pub refused: usize,
    pub tries: usize,
    /// Payloads promised (answered, not failed).
    pub promised: usize,
    /// Distinct payloads delivered.
    pub delivered: usize,
    /// Envelopes delivered again under the same message id (after a lost ack or a reconnect).
    pub redeliveries: usize,
    /// Distinct payloads first got by the final drain's fresh sockets: the receivers' live
    /// sockets never got them (not a violation: delivered on the next read).
    pub late: usize,
    pub handouts: usize,
    pub redemptions: usize,
    pub tickets_opened: usize,
    pub faults_by_kind: BTreeMap<&'static str, usize>,
    pub faults_unverified: usize,
}

/// The checker's verdict.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub figures: Figures,
}

/// Checks `history`; `skew_bound` is the clock skew between relays the ordering check allows.
pub fn check(history: &History, skew_bound: Ms) -> Report {
    let mut report = Report {
        figures: figures(history),
        ..Report::default()
    };
    let first = first_deliveries(history);
    report.violations.extend(lost(history, &first));
    report.violations.extend(reordered(history, &first, skew_bound));
    report.violations.extend(duplicates(history));
    report.violations.extend(phantoms(history));
    report.violations.extend(prekeys(history));
    report.violations.extend(tickets(history));
    report
}

/// `(device, payload)` → the position, time and relay of its first delivery.
fn first_deliveries(history: &History) -> HashMap<(usize, &str), (u64, Ms, usize)> {
    let mut first: HashMap<(usize, &str), (u64, Ms, usize)> = HashMap::new();
    for d in &history.deliveries {
        let seen = first
            .entry((d.device, d.payload.as_str()))
            .or_insert((d.seq, d.at, d.node));
        if d.seq < seen.0 {
            *seen = (d.seq, d.at, d.node);
        }
    }
    first
}

type First<'a> = HashMap<(usize, &'a str), (u64, Ms, usize)>;

fn figures(history: &History) -> Figures {
    let mut f = Figures {
        submissions: history.submissions.len(),
        handouts: history.handouts.len(),
        redemptions: history.redemptions.len(),
        tickets_opened: history.redemptions.iter().filter(|r| r.upgraded).count(),
        ..Figures::default()
    };
    for s in &history.submissions {
        f.tries += s.tries.len();
        if s.answered().is_some() {
            f.answered += 1;
            f.promised += s.promised().len();
        } else if s
            .tries
            .iter()
            .all(|t| matches!(t.outcome, TryOutcome::Status(c) if c < 500))
        {
            f.refused += 1;
        } else {
            f.indeterminate += 1;
        }
    }
    let mut seen: HashSet<(usize, &str, &[u8])> = HashSet::new();
    let mut payloads: HashSet<(usize, &str)> = HashSet::new();
    for d in &history.deliveries {
        if !seen.insert((d.device, d.payload.as_str(), d.message_id.as_slice())) {
            f.redeliveries += 1;
        }
        payloads.insert((d.device, d.payload.as_str()));
    }
    f.delivered = payloads.len();
    let mut first: HashMap<(usize, &str), (u64, bool)> = HashMap::new();
    for d in &history.deliveries {
        let seen = first
            .entry((d.device, d.payload.as_str()))
            .or_insert((d.seq, d.final_drain));
        if d.seq < seen.0 {
            *seen = (d.seq, d.final_drain);
        }
    }
    f.late = first.values().filter(|(_, late)| *late).count();
    for fault in &history.faults {
        *f.faults_by_kind.entry(fault.kind).or_default() += 1;
        f.faults_unverified += usize::from(!fault.verified);
    }
    f
}

fn lost(history: &History, first: &First<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    for s in &history.submissions {
        let Some((answered_at, _)) = s.answered() else { continue };
        for (device, payload) in s.promised() {
            if !first.contains_key(&(*device, payload.as_str())) {
                out.push(Violation::Lost {
                    sender: s.sender,
                    key: s.key.clone(),
                    device: *device,
                    payload: payload.clone(),
                    answered_at,
                    tries: s
                        .tries
                        .iter()
                        .map(|t| (t.node, t.start, format!("{:?}", t.outcome)))
                        .collect(),
                });
            }
        }
    }
    out
}

/// One answered and delivered message of one sender to one device.
struct Sent<'a> {
    payload: &'a str,
    began: Ms,
    answered: Ms,
    position: u64,
    delivered: (Ms, usize),
}

fn reordered(history: &History, first: &First<'_>, skew_bound: Ms) -> Vec<Violation> {
    let mut streams: BTreeMap<(usize, usize), Vec<Sent<'_>>> = BTreeMap::new();
    for s in &history.submissions {
        let Some((answered, _)) = s.answered() else { continue };
        for (device, payload) in s.promised() {
            if let Some(&(position, at, node)) = first.get(&(*device, payload.as_str())) {
                streams.entry((s.sender, *device)).or_default().push(Sent {
                    payload,
                    began: s.began(),
                    answered,
                    position,
                    delivered: (at, node),
                });
            }
        }
    }
    let mut out = Vec::new();
    for ((sender, device), mut sent) in streams {
        sent.sort_by_key(|m| m.answered);
        // For each later message, the earlier ones answered more than `skew_bound` before it
        // began must all come first: compare with the one of them delivered last.
        let mut by_began: Vec<&Sent<'_>> = sent.iter().collect();
        by_began.sort_by_key(|m| m.began);
        let mut done = 0;
        let mut latest: Option<&Sent<'_>> = None;
        for later in by_began {
            while done < sent.len() && sent[done].answered + skew_bound < later.began {
                if latest.is_none_or(|l| sent[done].position > l.position) {
                    latest = Some(&sent[done]);
                }
                done += 1;
            }
            if let Some(earlier) = latest {
                if earlier.position > later.position {
                    out.push(Violation::Reordered {
                        sender,
                        device,
                        earlier: earlier.payload.to_string(),
                        earlier_answered: earlier.answered,
                        later: later.payload.to_string(),
                        later_began: later.began,
                        later_delivered: later.delivered,
                    });
                }
            }
        }
    }
    out
}

fn duplicates(history: &History) -> Vec<Violation> {
    let mut ids: BTreeMap<(usize, &str), HashSet<&[u8]>> = BTreeMap::new();
    for d in &history.deliveries {
        ids.entry((d.device, d.payload.as_str()))
            .or_default()
            .insert(d.message_id.as_slice());
    }
    ids.into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|((device, payload), ids)| Violation::DuplicateKey {
            device,
            payload: payload.to_string(),
            message_ids: ids.len(),
        })
        .collect()
}

fn phantoms(history: &History) -> Vec<Violation> {
    let mut possible: HashSet<(usize, &str)> = HashSet::new();
    for s in &history.submissions {
        let refused = s
            .tries
            .iter()
            .all(|t| matches!(t.outcome, TryOutcome::Status(c) if c < 500));
        match s.answered() {
            Some(_) => possible.extend(s.promised().into_iter().map(|(d, p)| (*d, p.as_str()))),
            None if !refused => possible.extend(s.targets.iter().map(|(d, p)| (*d, p.as_str()))),
            None => {}
        }
    }
    let mut reported: HashSet<(usize, &str)> = HashSet::new();
    let mut out = Vec::new();
    for d in &history.deliveries {
        let at = (d.device, d.payload.as_str());
        if !possible.contains(&at) && reported.insert(at) {
            out.push(Violation::Phantom {
                device: d.device,
                payload: d.payload.clone(),
            });
        }
    }
    out
}

fn prekeys(history: &History) -> Vec<Violation> {
    let mut by_key: BTreeMap<(usize, i64), Vec<(usize, Ms)>> = BTreeMap::new();
    for h in &history.handouts {
        by_key.entry((h.device, h.key_id)).or_default().push((h.node, h.at));
    }
    by_key
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|((device, key_id), handouts)| Violation::PrekeyTwice {
            device,
            key_id,
            handouts,
        })
        .collect()
}

fn tickets(history: &History) -> Vec<Violation> {
    let mut by_ticket: BTreeMap<(&str, usize), Vec<(usize, Ms)>> = BTreeMap::new();
    for r in history.redemptions.iter().filter(|r| r.upgraded) {
        by_ticket
            .entry((r.ticket.as_str(), r.issued_by))
            .or_default()
            .push((r.node, r.at));
    }
    by_ticket
        .into_iter()
        .filter(|(_, nodes)| nodes.len() > 1)
        .map(|((ticket, issued_by), nodes)| Violation::TicketTwice {
            ticket: ticket.to_string(),
            issued_by,
            nodes,
        })
        .collect()
}

/// The report as printed: figures, violations by kind and the first one.
pub fn render(report: &Report) -> String {
    let f = &report.figures;
    let mut out = String::new();
    out += &format!("faults injected by kind: {:?}", f.faults_by_kind);
    out += &format!(" ({} not verified)\n", f.faults_unverified);
    out += &format!(
        "submissions: {} ({} tries): {} answered, {} indeterminate, {} refused\n",
        f.submissions, f.tries, f.answered, f.indeterminate, f.refused
    );
    out += &format!(
        "messages: {} promised, {} delivered (distinct; {} only by the final drain's fresh sockets), \
         {} redeliveries (duplicates of one message id)\n",
        f.promised, f.delivered, f.late, f.redeliveries
    );
    out += &format!(
        "prekeys handed out: {}; ticket redemptions: {} ({} opened a socket)\n",
        f.handouts, f.redemptions, f.tickets_opened
    );
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &report.violations {
        *kinds.entry(v.kind()).or_default() += 1;
    }
    out += &format!("violations: {} {kinds:?}\n", report.violations.len());
    if let Some(v) = report.violations.first() {
        out += &format!("first violation: {v}\n");
    }
    out
}

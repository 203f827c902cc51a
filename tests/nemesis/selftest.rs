//! The checker's self-tests: small hand-made histories, one clean and one per planted
//! violation; each must be found (and nothing else), and the clean one must pass.

use crate::checker::{check, Violation};
use crate::history::{Delivery, FaultEvent, Handout, History, Redemption, Submission, Try, TryOutcome};

const SKEW: u64 = 2_000;

type Res = Result<(), String>;

/// One self-test.
pub type SelfTest = fn() -> Res;

fn ok() -> TryOutcome {
    TryOutcome::Ok { failed: Vec::new() }
}

/// A submission of `sender` with key `key` to `device`, tried as `tries` (node, start, end, outcome).
fn sub(sender: usize, key: &str, device: usize, tries: &[(usize, u64, u64, TryOutcome)]) -> Submission {
    Submission {
        sender,
        key: key.to_string(),
        targets: vec![(device, format!("{key}/{device}"))],
        tries: tries
            .iter()
            .map(|(node, start, end, outcome)| Try {
                node: *node,
                start: *start,
                end: *end,
                outcome: outcome.clone(),
            })
            .collect(),
    }
}

fn got(h: &mut History, device: usize, payload: &str, id: u8) {
    let seq = h.deliveries.len() as u64;
    h.deliveries.push(Delivery {
        device,
        payload: payload.to_string(),
        message_id: vec![id; 16],
        node: 0,
        at: 100_000 + seq,
        seq,
        final_drain: false,
    });
}

/// A clean history exercising every kind of record: retries through another node after a
/// timeout, a redelivery after a lost ack, an indeterminate submission delivered once, a
/// refused one never delivered, a reported failure not delivered, an order inversion inside the
/// skew bound, distinct prekeys, and a ticket redeemed once of two tries.
fn clean() -> History {
    let mut h = History::default();
    h.submissions.push(sub(
        0,
        "a",
        1,
        &[
            (0, 0, 5_000, TryOutcome::Error("timeout".into())),
            (1, 5_100, 5_200, ok()),
        ],
    ));
    h.submissions.push(sub(0, "b", 1, &[(2, 10_000, 10_050, ok())]));
    h.submissions
        .push(sub(0, "c", 1, &[(1, 11_000, 11_100, TryOutcome::Status(503))]));
    h.submissions
        .push(sub(0, "d", 1, &[(1, 11_500, 11_600, TryOutcome::Status(400))]));
    // Began within the skew bound of b's answer: may come before b.
    h.submissions.push(sub(0, "e", 1, &[(0, 11_900, 12_000, ok())]));
    let mut failed = sub(1, "f", 2, &[(0, 12_000, 12_100, TryOutcome::Ok { failed: vec![0] })]);
    failed.targets.push((3, "f/3".into()));
    h.submissions.push(failed);
    for (payload, id) in [("a/1", 1), ("a/1", 1), ("e/1", 5), ("b/1", 2), ("c/1", 3), ("f/3", 6)] {
        let device = if payload == "f/3" { 3 } else { 1 };
        got(&mut h, device, payload, id);
    }
    for (device, key_id) in [(0, 1), (0, 2), (1, 1)] {
        h.handouts.push(Handout {
            device,
            key_id,
            node: key_id as usize,
            at: 1,
        });
    }
    for (node, upgraded) in [(0, true), (1, false)] {
        h.redemptions.push(Redemption {
            ticket: "t1".into(),
            issued_by: 0,
            node,
            at: 1,
            upgraded,
        });
    }
    h.faults.push(FaultEvent {
        at: 1,
        until: 2,
        kind: "relay-kill",
        detail: String::new(),
        verified: true,
    });
    h
}

fn only(h: &History, kind: &str) -> Result<Violation, String> {
    let report = check(h, SKEW);
    match report.violations.as_slice() {
        [v] if v.kind() == kind => Ok(v.clone()),
        other => Err(format!("expected exactly one {kind} violation, got {other:?}")),
    }
}

pub fn clean_history_passes() -> Res {
    let h = clean();
    let report = check(&h, SKEW);
    if !report.violations.is_empty() {
        return Err(format!("a clean history failed: {:?}", report.violations));
    }
    let f = &report.figures;
    let expected = (6, 4, 1, 1, 4, 5, 1);
    let seen = (
        f.submissions,
        f.answered,
        f.indeterminate,
        f.refused,
        f.promised,
        f.delivered,
        f.redeliveries,
    );
    if seen != expected {
        return Err(format!("figures {seen:?}, expected {expected:?}"));
    }
    Ok(())
}

pub fn delivery_only_by_the_final_drain_is_late_not_lost() -> Res {
    let mut h = clean();
    for d in h.deliveries.iter_mut().filter(|d| d.payload == "b/1") {
        d.final_drain = true;
    }
    let report = check(&h, SKEW);
    if !report.violations.is_empty() || report.figures.late != 1 {
        return Err(format!("{:?}, late {}", report.violations, report.figures.late));
    }
    Ok(())
}

pub fn lost_message_is_found() -> Res {
    let mut h = clean();
    h.deliveries.retain(|d| d.payload != "b/1");
    match only(&h, "lost")? {
        Violation::Lost { payload, .. } if payload == "b/1" => Ok(()),
        v => Err(format!("wrong violation {v:?}")),
    }
}

pub fn reordering_beyond_the_skew_bound_is_found() -> Res {
    let mut h = clean();
    // g began 3 s after b was answered but is delivered before it.
    h.submissions.push(sub(0, "g", 1, &[(1, 13_100, 13_200, ok())]));
    let seq = h.deliveries.iter().position(|d| d.payload == "b/1").ok_or("no b")?;
    h.deliveries.insert(
        seq,
        Delivery {
            device: 1,
            payload: "g/1".into(),
            message_id: vec![7; 16],
            node: 0,
            at: 1,
            seq: 0,
            final_drain: false,
        },
    );
    for (i, d) in h.deliveries.iter_mut().enumerate() {
        d.seq = i as u64;
    }
    match only(&h, "reordered")? {
        Violation::Reordered { earlier, later, .. } if earlier == "b/1" && later == "g/1" => Ok(()),
        v => Err(format!("wrong violation {v:?}")),
    }
}

pub fn idempotency_key_delivered_twice_is_found() -> Res {
    let mut h = clean();
    // The indeterminate try of c committed and so did a later one: two message ids.
    got(&mut h, 1, "c/1", 9);
    match only(&h, "duplicate-key")? {
        Violation::DuplicateKey {
            payload,
            message_ids: 2,
            ..
        } if payload == "c/1" => Ok(()),
        v => Err(format!("wrong violation {v:?}")),
    }
}

pub fn refused_submission_delivered_is_found() -> Res {
    let mut h = clean();
    got(&mut h, 1, "d/1", 10);
    match only(&h, "phantom")? {
        Violation::Phantom { payload, .. } if payload == "d/1" => Ok(()),
        v => Err(format!("wrong violation {v:?}")),
    }
}

pub fn prekey_handed_out_twice_is_found() -> Res {
    let mut h = clean();
    h.handouts.push(Handout {
        device: 0,
        key_id: 2,
        node: 0,
        at: 2,
    });
    match only(&h, "prekey-twice")? {
        Violation::PrekeyTwice {
            device: 0, key_id: 2, ..
        } => Ok(()),
        v => Err(format!("wrong violation {v:?}")),
    }
}

pub fn ticket_redeemed_twice_is_found() -> Res {
    let mut h = clean();
    h.redemptions.push(Redemption {
        ticket: "t1".into(),
        issued_by: 0,
        node: 2,
        at: 1,
        upgraded: true,
    });
    match only(&h, "ticket-twice")? {
        Violation::TicketTwice { nodes, .. } if nodes.iter().map(|n| n.0).eq([0, 2]) => Ok(()),
        v => Err(format!("wrong violation {v:?}")),
    }
}

/// Every self-test, named.
pub fn all() -> Vec<(&'static str, SelfTest)> {
    vec![
        ("checker::clean_history_passes", clean_history_passes),
        ("checker::lost_message_is_found", lost_message_is_found),
        (
            "checker::delivery_only_by_the_final_drain_is_late_not_lost",
            delivery_only_by_the_final_drain_is_late_not_lost,
        ),
        (
            "checker::reordering_beyond_the_skew_bound_is_found",
            reordering_beyond_the_skew_bound_is_found,
        ),
        (
            "checker::idempotency_key_delivered_twice_is_found",
            idempotency_key_delivered_twice_is_found,
        ),
        (
            "checker::refused_submission_delivered_is_found",
            refused_submission_delivered_is_found,
        ),
        (
            "checker::prekey_handed_out_twice_is_found",
            prekey_handed_out_twice_is_found,
        ),
        (
            "checker::ticket_redeemed_twice_is_found",
            ticket_redeemed_twice_is_found,
        ),
    ]
}

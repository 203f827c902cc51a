//! Crash safety of the data plane (BEHAVIOR §7.1 step 9 "200 only when durable", §8.5, §8.7):
//! with `--durability fsync`, a SIGKILL in the middle of sending and acking loses no message
//! whose `POST /v1/messages` was answered 200, brings back no message whose ack was flushed
//! long before the kill, and lets clients retry with the same Idempotency-Key without
//! duplicates.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::data::{self, member, queued_for, Member};
use crate::common::gateway::{ticket, Event, Gateway};
use crate::common::wire::{self, FramePayload, Submission};
use crate::common::{random_uuid, Client, TestResult, TestServer};

/// How long before the kill an ack may be and still be redelivered: the ack flush interval is
/// 50 ms, so anything acked a second before the kill has long been applied.
const ACK_GRACE: Duration = Duration::from_secs(1);

/// One `POST /v1/messages` a sender made: its key, body and texts.
#[derive(Clone)]
struct Request {
    key: String,
    body: Vec<u8>,
    texts: Vec<String>,
}

/// What one sender did: requests answered 200 (in order), and the one the kill cut off.
#[derive(Default)]
struct SenderLog {
    answered: Vec<Request>,
    cut_off: Option<Request>,
}

/// Posts batches until `stop` or the first failure: 5 texts, each to both `to` devices (10
/// submissions). Records every request answered 200 with an empty body, and the one that
/// failed because the server died.
fn sender(base: String, from: &Member, to: [[u8; 16]; 2], k: usize, stop: &AtomicBool) -> SenderLog {
    let client = Client::new(base);
    let mut log = SenderLog::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let texts: Vec<String> = (0..5).map(|i| format!("s{k}-{:06}", n + i)).collect();
        n += 5;
        let subs: Vec<Submission> = texts
            .iter()
            .flat_map(|t| to.iter().map(move |d| Submission::to(d, t.as_bytes())))
            .collect();
        let req = Request {
            key: random_uuid(),
            body: wire::encode_send_request(&subs),
            texts,
        };
        match data::post_messages(&client, from.token(), &req.key, req.body.clone()) {
            Ok(resp) if resp.status == 200 && resp.body.is_empty() => log.answered.push(req),
            Ok(resp) => {
                eprintln!("sender {k}: stopping on {resp:?}");
                break;
            }
            Err(_) => {
                log.cut_off = Some(req); // the server died
                break;
            }
        }
    }
    log
}

/// Reads and acks everything until the connection ends or `stop`; returns text → ack time.
fn receiver(mut gw: Gateway, stop: &AtomicBool) -> HashMap<String, Instant> {
    let mut acked = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        match gw.next_event(Duration::from_millis(100)) {
            Ok(Some(Event::Frame(FramePayload::EnvelopeBatch(envs)))) => {
                if gw.ack_envelopes(&envs).is_err() {
                    break;
                }
                let now = Instant::now();
                for e in envs {
                    acked.entry(e.text()).or_insert(now);
                }
            }
            Ok(Some(Event::Ended(_) | Event::Close(_))) | Err(_) => break,
            Ok(_) => {}
        }
    }
    acked
}

/// Each sender's messages (`s<k>-<n>`, zero-padded) appear in increasing order.
fn in_sender_order(texts: &[String]) -> TestResult {
    let mut per_sender: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for t in texts {
        per_sender.entry(t.split('-').next().unwrap_or("")).or_default().push(t);
    }
    for (who, seq) in per_sender {
        if let Some(w) = seq.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!("{who}'s messages out of order: {} then {}", w[0], w[1]).into());
        }
    }
    Ok(())
}

/// What the traffic phase saw: the accepted texts, the receiver's ack times, the kill time.
struct Traffic {
    accepted: Vec<String>,
    /// Per sender: the last answered requests and the cut-off one, to retry after the restart.
    retries: Vec<Vec<Request>>,
    acked: HashMap<String, Instant>,
    killed_at: Instant,
}

/// Runs both senders and the live receiver for ~2 s, then SIGKILLs and restarts the server.
fn traffic_then_kill(
    server: &mut TestServer,
    senders: &[Member],
    rx: &Member,
    offline: &Member,
) -> Result<Traffic, Box<dyn std::error::Error>> {
    let base = server.base_url();
    let gw = Gateway::open(server.main_port, &ticket(&server.client(), rx.token())?)?;
    let stop = AtomicBool::new(false);
    let logs: Mutex<Vec<(usize, SenderLog)>> = Mutex::new(Vec::new());
    let mut killed_at = Instant::now();
    let acked = std::thread::scope(|s| -> Result<HashMap<String, Instant>, Box<dyn std::error::Error>> {
        let stop = &stop;
        let rx_thread = s.spawn(move || receiver(gw, stop));
        let handles: Vec<_> = senders
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let (base, to, logs) = (base.clone(), [rx.id, offline.id], &logs);
                s.spawn(move || {
                    let log = sender(base, m, to, k, stop);
                    if let Ok(mut l) = logs.lock() {
                        l.push((k, log));
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        killed_at = Instant::now();
        server.crash_restart()?;
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            h.join().map_err(|_| "sender panicked")?;
        }
        Ok(rx_thread.join().map_err(|_| "receiver panicked")?)
    })?;
    let mut logs = logs.into_inner().map_err(|_| "poisoned")?;
    logs.sort_by_key(|(k, _)| *k);
    let accepted = logs
        .iter()
        .flat_map(|(_, l)| l.answered.iter().flat_map(|r| r.texts.iter().cloned()))
        .collect();
    let retries = logs
        .into_iter()
        .map(|(_, l)| {
            let tail = l.answered.len().saturating_sub(20);
            let mut r = l.answered[tail..].to_vec();
            r.extend(l.cut_off);
            r
        })
        .collect();
    Ok(Traffic {
        accepted,
        retries,
        acked,
        killed_at,
    })
}

/// Re-sends each sender's `retries` with the same key and body, asserting a full success, and
/// counts the last one (the cut-off request, if there was one) as accepted.
fn retry_after_restart(
    server: &TestServer,
    senders: &[Member],
    retries: &[Vec<Request>],
    accepted: &mut Vec<String>,
) -> TestResult {
    let client = server.client();
    for (k, reqs) in retries.iter().enumerate() {
        for r in reqs {
            let resp = data::post_messages(&client, senders[k].token(), &r.key, r.body.clone())?;
            assert!(
                data::decode_200(&resp)?.is_empty(),
                "retry of {:?} after the crash: {resp:?}",
                r.texts
            );
        }
        if let Some(last) = reqs.last() {
            for t in &last.texts {
                if !accepted.contains(t) {
                    accepted.push(t.clone());
                }
            }
        }
    }
    Ok(())
}

/// The first few of `items`, for messages.
fn some<T: std::fmt::Debug>(items: &[T]) -> String {
    format!("{:?}", &items[..items.len().min(5)])
}

/// The device that never connected holds every accepted message (and possibly some whose
/// answer the kill cut off), once each even after the retries, in each sender's order.
/// Returns its queue's texts.
fn check_offline_queue(
    server: &TestServer,
    offline: &Member,
    accepted: &[String],
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let total = accepted.len();
    let kept = data::texts(&queued_for(server, offline)?);
    let kept_set: HashSet<&String> = kept.iter().collect();
    assert_eq!(
        kept_set.len(),
        kept.len(),
        "a message is queued twice for the offline device"
    );
    let missing: Vec<&String> = accepted.iter().filter(|t| !kept_set.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} accepted messages are missing for the offline device, e.g. {}",
        missing.len(),
        some(&missing)
    );
    in_sender_order(&kept)?;
    Ok(kept)
}

#[test]
fn sigkill_loses_no_accepted_message() -> TestResult {
    // Goal: with fsync durability every 200-answered submission survives a SIGKILL: after the
    // restart it is either redelivered or was acked before the kill; nothing acked more than
    // 1 s before the kill comes back; nothing is redelivered twice or out of each sender's
    // order; and a device that never connected holds every accepted message. Method: 2 sender
    // threads post batches of 5 messages, each to a live receiver that acks every batch at
    // once (`--ws-ack-flush-interval-ms 50`) and to an offline device; after ~2 s SIGKILL and
    // restart; fresh sockets drain both queues (a sentinel marks the end). Before the offline
    // device's queue is read, each sender retries (same key, same body) its cut-off request
    // and its last 20 answered ones: all 200, and nothing is queued twice. The inbox cap is
    // raised so the retention sweep at boot does not prune the offline device's queue.
    let mut server = data::server_with(&[
        "--durability",
        "fsync",
        "--ws-ack-flush-interval-ms",
        "50",
        "--messaging-inbox-max-size",
        "1000000",
    ])?;
    let client = server.client();
    let senders = [member(&client, "sender0", 0)?, member(&client, "sender1", 0)?];
    let rx = member(&client, "receiver", 20)?;
    let offline = member(&client, "offline", 20)?;
    let Traffic {
        mut accepted,
        retries,
        acked,
        killed_at,
    } = traffic_then_kill(&mut server, &senders, &rx, &offline)?;
    let total = accepted.len();
    assert!(total > 0, "no submission was accepted before the kill");
    assert!(!acked.is_empty(), "the receiver acked nothing before the kill");

    let redelivered: Vec<String> = data::texts(&queued_for(&server, &rx)?);
    let unique: HashSet<&String> = redelivered.iter().collect();
    assert_eq!(
        unique.len(),
        redelivered.len(),
        "a message was redelivered twice in one session"
    );
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|t| !unique.contains(t) && !acked.contains_key(*t))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {total} accepted messages were lost, e.g. {}",
        lost.len(),
        some(&lost)
    );
    let stale: Vec<&String> = redelivered
        .iter()
        .filter(|t| acked.get(*t).is_some_and(|at| *at + ACK_GRACE < killed_at))
        .collect();
    assert!(
        stale.is_empty(),
        "{} messages acked more than {ACK_GRACE:?} before the kill came back, e.g. {}",
        stale.len(),
        some(&stale)
    );
    in_sender_order(&redelivered)?;

    // Clients retry what they are unsure of with the same key and body: the request the kill
    // cut off and (harmlessly) the last answered ones. Each answer is a full success, and the
    // cut-off batch now counts as accepted.
    retry_after_restart(&server, &senders, &retries, &mut accepted)?;

    let kept = check_offline_queue(&server, &offline, &accepted)?;
    eprintln!(
        "accepted {total} (+ cut off {}), acked before the kill {}, redelivered {}, kept offline {}",
        accepted.len() - total,
        acked.len(),
        redelivered.len(),
        kept.len()
    );
    Ok(())
}

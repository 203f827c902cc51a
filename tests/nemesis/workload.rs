//! The clients: senders that retry with the same `Idempotency-Key` through another relay,
//! receivers that hold a socket and reconnect to a random relay when it drops (acking what they
//! get), a prekey fetcher that fetches one user's bundles through every relay at once, and a
//! ticket redeemer that redeems each ticket through two relays at once. Everything they see
//! goes into the shared history.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::data::{self, member, Member};
use crate::common::gateway::{Event, Gateway, Handshake};
use crate::common::wire::{self, FramePayload, Submission as WireSubmission};
use crate::common::{random_uuid, Client};
use crate::history::{Delivery, Handout, Redemption, Submission, Try, TryOutcome};
use crate::run::{Res, Shared, RELAYS};
use crate::schedule::Rng;

const SENDERS: usize = 3;
const RECEIVERS: usize = 4;
const PREKEY_USERS: usize = 2;
/// Bound on one HTTP request of the workload: a paused relay costs a try this long.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries of one submission (each through the next relay).
const MAX_TRIES: usize = 6;
/// A socket whose relay answers no ping for this long is given up.
const STALE: Duration = Duration::from_secs(8);
/// One-time prekeys per refill; a refill follows this many handouts of one device.
const REFILL: usize = 50;
const REFILL_AFTER: usize = 30;

/// The accounts of the workload, made before the faults start.
pub struct Users {
    senders: Vec<Member>,
    receivers: Vec<Member>,
    prekey: Vec<Member>,
    ticket: Member,
}

impl Users {
    pub fn create(client: &Client) -> Res<Self> {
        let named = |kind: &str, n: usize, otpks: usize| -> Res<Vec<Member>> {
            (0..n)
                .map(|i| member(client, &format!("nem{kind}{i}"), otpks))
                .collect()
        };
        Ok(Users {
            senders: named("sender", SENDERS, 1)?,
            receivers: named("receiver", RECEIVERS, 1)?,
            prekey: named("keys", PREKEY_USERS, 100)?,
            ticket: member(client, "nemticket", 1)?,
        })
    }
}

/// Clients by port, made on first use.
#[derive(Default)]
struct Clients(HashMap<u16, Client>);

impl Clients {
    fn get(&mut self, port: u16) -> &Client {
        self.0
            .entry(port)
            .or_insert_with(|| Client::with_timeout(format!("http://127.0.0.1:{port}"), TRY_TIMEOUT))
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Starts every client: the load threads (senders, fetcher, redeemer) and the receivers.
pub fn start(shared: &Arc<Shared>, users: &Users, seed: u64) -> (Vec<JoinHandle<()>>, Vec<JoinHandle<()>>) {
    let mut rng = Rng::new(seed).fork(2);
    let targets: Vec<[u8; 16]> = users.receivers.iter().map(|m| m.id).collect();
    let mut load = Vec::new();
    for (i, s) in users.senders.iter().enumerate() {
        let (sh, token, targets, rng) = (
            shared.clone(),
            s.token().to_string(),
            targets.clone(),
            rng.fork(i as u64),
        );
        load.push(std::thread::spawn(move || sender(&sh, i, &token, &targets, rng)));
    }
    let (sh, token, keys, r) = (
        shared.clone(),
        users.senders[0].token().to_string(),
        users.prekey.clone(),
        rng.fork(10),
    );
    load.push(std::thread::spawn(move || fetcher(&sh, &token, &keys, r)));
    let (sh, token, r) = (shared.clone(), users.ticket.token().to_string(), rng.fork(11));
    load.push(std::thread::spawn(move || redeemer(&sh, &token, r)));
    let receivers = users
        .receivers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (sh, token, r) = (shared.clone(), m.token().to_string(), rng.fork(20 + i as u64));
            std::thread::spawn(move || receiver(&sh, i, &token, r))
        })
        .collect();
    (load, receivers)
}

/// Sends one or two messages at a time to random receivers, each submission retried (same
/// key, same body) through the next relay until one answers 200.
fn sender(sh: &Shared, me: usize, token: &str, targets: &[[u8; 16]], mut rng: Rng) {
    let mut clients = Clients::default();
    while !sh.stopped() {
        let first = rng.below(targets.len());
        let mut devices = vec![first];
        if rng.below(2) == 0 {
            devices.push((first + 1 + rng.below(targets.len() - 1)) % targets.len());
        }
        let key = random_uuid();
        let targets_of: Vec<(usize, String)> = devices.iter().map(|&d| (d, format!("{key}/{d}"))).collect();
        let subs: Vec<WireSubmission> = targets_of
            .iter()
            .map(|(d, p)| WireSubmission::to(&targets[*d], p.as_bytes()))
            .collect();
        let body = wire::encode_send_request(&subs);
        let mut s = Submission {
            sender: me,
            key,
            targets: targets_of,
            tries: Vec::new(),
        };
        let node0 = rng.below(RELAYS);
        for attempt in 0..MAX_TRIES {
            if attempt > 0 {
                sleep_ms(200 * attempt as u64);
            }
            let node = (node0 + attempt) % RELAYS;
            let Some(port) = sh.port(node) else { continue };
            let start = sh.now();
            let outcome = send_once(clients.get(port), token, &s.key, &body, &subs);
            let done = matches!(outcome, TryOutcome::Ok { .. });
            s.tries.push(Try {
                node,
                start,
                end: sh.now(),
                outcome,
            });
            if done {
                break;
            }
        }
        if !s.tries.is_empty() {
            sh.record(|h| h.submissions.push(s));
        }
        sleep_ms(rng.range(60, 200));
    }
}

fn send_once(client: &Client, token: &str, key: &str, body: &[u8], subs: &[WireSubmission]) -> TryOutcome {
    match data::post_messages(client, token, key, body.to_vec()) {
        Ok(resp) if resp.status == 200 => match wire::decode_send_response(&resp.body) {
            Ok(failed) => TryOutcome::Ok {
                failed: subs
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| failed.iter().any(|f| f.submission_id == s.submission_id))
                    .map(|(i, _)| i)
                    .collect(),
            },
            Err(e) => TryOutcome::Error(format!("undecodable 200 body: {e}")),
        },
        Ok(resp) => TryOutcome::Status(resp.status),
        Err(e) => TryOutcome::Error(e.to_string()),
    }
}

/// A ticket for `token` through `client` (201), or why not.
fn ticket(client: &Client, token: &str) -> Res<String> {
    let resp = client.post("/v1/gateway/ticket").bearer(token).send()?;
    if resp.status != 201 {
        return Err(format!("ticket: {}", resp.status).into());
    }
    Ok(resp.json()?["ticket"].as_str().ok_or("no ticket")?.to_string())
}

/// Holds a socket for one device on a random relay, reconnecting (to a random relay) whenever
/// it ends or goes quiet, and acks every batch as it arrives.
fn receiver(sh: &Shared, me: usize, token: &str, mut rng: Rng) {
    let mut clients = Clients::default();
    let mut seq = 0u64;
    while !sh.stop_receivers.load(Ordering::Acquire) {
        let up = sh.up();
        if up.is_empty() {
            sleep_ms(200);
            continue;
        }
        let node = up[rng.below(up.len())];
        let Some(port) = sh.port(node) else { continue };
        let gw = ticket(clients.get(port), token).and_then(|t| Gateway::open(port, &t));
        match gw {
            Ok(mut gw) => {
                if session(sh, &mut gw, me, node, &mut seq) {
                    gw.abandon();
                }
            }
            Err(_) => sleep_ms(300),
        }
    }
}

/// Reads one socket until it ends, goes stale or the run stops; true if it should be dropped
/// without a goodbye.
fn session(sh: &Shared, gw: &mut Gateway, me: usize, node: usize, seq: &mut u64) -> bool {
    let (mut last_ping, mut last_pong) = (Instant::now(), Instant::now());
    loop {
        if sh.stop_receivers.load(Ordering::Acquire) {
            return false;
        }
        if last_pong.elapsed() > STALE {
            return true;
        }
        if last_ping.elapsed() > Duration::from_secs(2) {
            if gw.ping(b"nemesis").is_err() {
                return true;
            }
            last_ping = Instant::now();
        }
        match gw.next_event(Duration::from_millis(500)) {
            Ok(None) => {}
            Ok(Some(Event::Frame(FramePayload::EnvelopeBatch(envs)))) => {
                let at = sh.now();
                sh.record(|h| {
                    for e in &envs {
                        h.deliveries.push(Delivery {
                            device: me,
                            payload: e.text(),
                            message_id: e.id.clone(),
                            node,
                            at,
                            seq: *seq,
                            final_drain: false,
                        });
                        *seq += 1;
                    }
                });
                if gw.ack_envelopes(&envs).is_err() {
                    return true;
                }
            }
            Ok(Some(Event::Pong(_))) => last_pong = Instant::now(),
            Ok(Some(Event::Ended(_) | Event::Close(_))) | Err(_) => return true,
            Ok(Some(_)) => {}
        }
    }
}

/// Fetches one prekey user's bundles through every relay at once, in rounds, alternating
/// users, and refills a device's one-time prekeys (fresh ids) every `REFILL_AFTER` handouts.
fn fetcher(sh: &Shared, token: &str, keys: &[Member], mut rng: Rng) {
    let mut clients = Clients::default();
    let mut since_refill = vec![0usize; keys.len()];
    let mut next_id = vec![101i32; keys.len()];
    let mut spk_id = vec![1i32; keys.len()];
    let mut round = 0usize;
    while !sh.stopped() {
        let t = round % keys.len();
        round += 1;
        let ports: Vec<(usize, Client)> = (0..RELAYS)
            .filter_map(|n| Some((n, clients.get(sh.port(n)?).clone())))
            .collect();
        let barrier = Barrier::new(ports.len());
        let fetched: Vec<(usize, Ms, Option<i64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = ports
                .iter()
                .map(|(n, c)| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        (*n, sh.now(), fetch_one(c, token, &keys[t]))
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        sh.record(|h| {
            for (node, at, key_id) in &fetched {
                if let Some(key_id) = key_id {
                    h.handouts.push(Handout {
                        device: t,
                        key_id: *key_id,
                        node: *node,
                        at: *at,
                    });
                }
            }
        });
        since_refill[t] += fetched.iter().filter(|f| f.2.is_some()).count();
        if since_refill[t] >= REFILL_AFTER {
            spk_id[t] += 1;
            let body = data::upload_body(keys[t].seed, None, spk_id[t], next_id[t], REFILL);
            next_id[t] += REFILL as i32;
            let node = rng.below(RELAYS);
            if let Some(port) = sh.port(node) {
                if data::upload_keys(clients.get(port), keys[t].token(), &body).is_ok_and(|r| r.status == 200) {
                    since_refill[t] = 0;
                }
            }
        }
        sleep_ms(300);
    }
}

type Ms = crate::history::Ms;

/// One bundle fetch of `target`'s user: the one-time prekey id it got for that device.
fn fetch_one(client: &Client, token: &str, target: &Member) -> Option<i64> {
    let resp = data::fetch_bundles(client, token, target.user_id()).ok()?;
    if resp.status != 200 {
        return None;
    }
    let bundles: Value = resp.json().ok()?;
    let bundle = bundles
        .as_array()?
        .iter()
        .find(|b| b["deviceId"].as_str() == Some(target.device_id.as_str()))?;
    bundle.get("oneTimePreKey")?.get("keyId")?.as_i64()
}

/// Takes a ticket through one relay and redeems it through two others at the same moment.
fn redeemer(sh: &Shared, token: &str, mut rng: Rng) {
    let mut clients = Clients::default();
    while !sh.stopped() {
        sleep_ms(700);
        let a = rng.below(RELAYS);
        let b = (a + 1 + rng.below(RELAYS - 1)) % RELAYS;
        let issuer = rng.below(RELAYS);
        let (Some(pa), Some(pb), Some(pi)) = (sh.port(a), sh.port(b), sh.port(issuer)) else {
            continue;
        };
        let Ok(t) = ticket(clients.get(pi), token) else {
            continue;
        };
        let barrier = Barrier::new(2);
        let results: Vec<Redemption> = std::thread::scope(|s| {
            let handles: Vec<_> = [(a, pa), (b, pb)]
                .into_iter()
                .map(|(node, port)| {
                    let (barrier, t) = (&barrier, t.as_str());
                    s.spawn(move || {
                        barrier.wait();
                        let at = sh.now();
                        let upgraded = match Gateway::handshake(port, t) {
                            Ok(Handshake::Upgraded(gw)) => {
                                gw.abandon();
                                true
                            }
                            _ => false,
                        };
                        Redemption {
                            ticket: t.to_string(),
                            issued_by: issuer,
                            node,
                            at,
                            upgraded,
                        }
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        sh.record(|h| h.redemptions.extend(results));
    }
}

/// After the receivers stopped: a fresh socket per receiving device on relay `node`, read
/// until quiet for 3 s and acked; what it gets is recorded as `final_drain`.
pub fn final_drain(sh: &Shared, users: &Users, node: usize) -> Res<()> {
    let port = sh.port(node).ok_or("the final drain's relay is down")?;
    let client = Client::new(format!("http://127.0.0.1:{port}"));
    for (me, m) in users.receivers.iter().enumerate() {
        let mut gw = Gateway::open(port, &ticket(&client, m.token())?)?;
        let envs = gw.drain(Duration::from_secs(3), Duration::from_secs(60))?;
        gw.ack_envelopes(&envs)?;
        gw.close()?;
        let at = sh.now();
        sh.record(|h| {
            let next = h
                .deliveries
                .iter()
                .filter(|d| d.device == me)
                .map(|d| d.seq + 1)
                .max()
                .unwrap_or(0);
            for (seq, e) in (next..).zip(&envs) {
                h.deliveries.push(Delivery {
                    device: me,
                    payload: e.text(),
                    message_id: e.id.clone(),
                    node,
                    at,
                    seq,
                    final_drain: true,
                });
            }
        });
    }
    Ok(())
}

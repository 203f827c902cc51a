//! `POST /v1/messages` (BEHAVIOR.md §7): a protobuf `SendMessageRequest`,
//! an `Idempotency-Key` scoped to the sending device, per-submission
//! failures in the `SendMessageResponse`.
//!
//! The key belongs to the sending device, so its owner shard keeps it: the
//! first request claims it there (in memory), a repeat that arrives
//! meanwhile waits for the first one's answer, and a repeat after that gets
//! the answer without queuing anything. An answer is stored after the
//! response (kept in the owner's memory until that write is in), so a send
//! waits for one journal flush, not two. Whether an answer is stored
//! already is checked inside the appends themselves
//! ([`crate::store::Mailboxes::append_unless_answered`]), so a send reads
//! nothing before it appends; only a body that is not appended (undecodable,
//! over the batch limit, no valid submission) is looked up on its own, and
//! an answer stored under the key wins over its error. While the key is
//! claimed no answer can be stored under it, so every append of a request
//! sees the same answer or none.
//!
//! Valid submissions are grouped by the owner shard of their target device
//! and appended there (group-committed); the answer goes out when every
//! group is durable. Deduplication is per (sender device, submission id,
//! target device), kept with the target's mailbox: the reference's rule,
//! narrowed to one target, since clients give every target its own
//! submission id. A target that names a user instead of a device (a legacy
//! client, BEHAVIOR.md §17.2) reaches that user's primary device: targets
//! not known to be devices ([`super::known_devices`]) are resolved in one
//! store read before anything is appended.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use prost::Message;
use uuid::Uuid;

use super::error::{device_scope_required, ApiError};
use super::{RequestCtx, ShardLocal};
use crate::admin::metrics::Counter;
use crate::gateway::events::Arrival;
use crate::http::{Body, Response};
use crate::offload::oneshot;
use crate::proto::send_message_response::{ErrorCode, FailedSubmission};
use crate::proto::{SendMessageRequest, SendMessageResponse};
use crate::shard::mesh::MeshEndpoint;
use crate::shard::{placement, ShardId};
use crate::store::{AnswerKey, Appended, GuardedAppend, NewMessage, StoreError, StoredMessage};
use crate::util::time::{millis_after, now_millis, now_secs};

/// `Content-Type` of the answer, as the contract says.
const PROTOBUF: HeaderValue = HeaderValue::from_static("application/x-protobuf");

/// What the owner of the sending device says about a key.
enum Claim {
    /// This request processes it.
    Mine,
    /// Another request with the same key is in flight: its answer comes here
    /// (`None` if it failed, and then this request tries again).
    Wait(oneshot::Receiver<Option<Bytes>>),
    /// Answered before, and the answer is still in memory: the same again.
    Replay(Bytes),
}

/// How a claimed request ended.
enum Outcome {
    /// This request's own answer: stored under the key for the TTL.
    Answered(Response),
    /// An earlier request's answer, found stored under the key.
    Replayed(Bytes),
}

fn idempotency_key(ctx: &RequestCtx<'_>) -> Result<Uuid, ApiError> {
    let missing = || ApiError::BadRequest("Missing idempotency-key header".into());
    let text = ctx
        .head
        .headers
        .get("idempotency-key")
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?;
    Uuid::parse_str(text).map_err(|e| ApiError::BadRequest(format!("Invalid idempotency-key: {e}")))
}

fn answer(bytes: Bytes) -> Response {
    Response::bytes(StatusCode::OK, PROTOBUF, bytes)
}

/// `POST /v1/messages`.
pub async fn send(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let bytes = body.read_to_vec(ctx.app.config.http_body_bytes_max).await?;
    let device = principal.device_id.ok_or_else(device_scope_required)?;
    let guard = AnswerKey {
        device,
        key: idempotency_key(ctx)?,
        now_secs: now_secs(),
    };
    let claim = ClaimGuard {
        claim: Some((ctx.mesh.clone(), device, guard.key)),
    };
    loop {
        let key = guard.key;
        let outcome = ctx
            .on_device_owner(device, move |owner| async move { claim_key(&owner, device, key) })
            .await?;
        let earlier = match outcome {
            Claim::Mine => break,
            Claim::Replay(earlier) => Some(earlier),
            Claim::Wait(first) => first.await.ok().flatten(),
        };
        if let Some(earlier) = earlier {
            claim.forget();
            return Ok(answer(earlier));
        }
    }
    match accept(ctx, principal.user_id, guard, &bytes).await? {
        Outcome::Answered(response) => {
            claim.release(Settle::Store(response.body.clone()));
            Ok(response)
        }
        Outcome::Replayed(earlier) => {
            claim.release(Settle::Replayed(earlier.clone()));
            Ok(answer(earlier))
        }
    }
}

/// On the sending device's owner: claims `key`, or says whom to wait for.
fn claim_key(owner: &ShardLocal, device: Uuid, key: Uuid) -> Claim {
    if let Some(waiters) = owner.in_flight.borrow_mut().get_mut(&(device, key)) {
        let (tx, rx) = oneshot::channel();
        waiters.push(tx);
        return Claim::Wait(rx);
    }
    if let Some(earlier) = owner.recent_answers.borrow().get(&(device, key)) {
        return Claim::Replay(earlier.clone());
    }
    owner.in_flight.borrow_mut().insert((device, key), Vec::new());
    Claim::Mine
}

/// On the owner: ends the claim and hands `answer` to the waiters.
fn finish(owner: &ShardLocal, device: Uuid, key: Uuid, answer: Option<Bytes>) {
    let waiters = owner.in_flight.borrow_mut().remove(&(device, key)).unwrap_or_default();
    for waiter in waiters {
        waiter.send(answer.clone());
    }
}

/// How a claim ends.
enum Settle {
    /// Failed, timed out or cancelled: waiters try again.
    Failed,
    /// A new answer: store it for the TTL.
    Store(Bytes),
    /// An answer that is stored already.
    Replayed(Bytes),
}

/// A claimed key. Released when the request answered (in the background:
/// the response does not wait for it), and on drop (a failure, a timeout, a
/// cancelled request) with no answer, so waiters retry.
struct ClaimGuard {
    claim: Option<(Rc<MeshEndpoint<ShardLocal>>, Uuid, Uuid)>,
}

impl ClaimGuard {
    /// Releases the key on its owner in the background.
    fn release(mut self, settle: Settle) {
        if let Some((mesh, device, key)) = self.claim.take() {
            monoio::spawn(release(mesh, device, key, settle));
        }
    }

    /// The request ended without holding the claim any more.
    fn forget(mut self) {
        self.claim = None;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some((mesh, device, key)) = self.claim.take() {
            monoio::spawn(release(mesh, device, key, Settle::Failed));
        }
    }
}

/// Settles the claim of (`device`, `key`) on the device's owner.
async fn release(mesh: Rc<MeshEndpoint<ShardLocal>>, device: Uuid, key: Uuid, settle: Settle) {
    let owner = placement::device_owner(device, mesh.shards());
    let _ = mesh
        .call(owner, move |o| async move { settle_claim(o, device, key, settle) })
        .await;
}

/// On the owner: ends the claim at once, and stores a new answer in the
/// background. Until that write is in, the answer is replayed from
/// memory, so the sender never waits for a second journal flush and a
/// repeat in between still gets the same answer.
fn settle_claim(owner: Rc<ShardLocal>, device: Uuid, key: Uuid, settle: Settle) {
    let answer = match settle {
        Settle::Failed => return finish(&owner, device, key, None),
        Settle::Replayed(answer) => return finish(&owner, device, key, Some(answer)),
        Settle::Store(answer) => answer,
    };
    finish(&owner, device, key, Some(answer.clone()));
    owner.recent_answers.borrow_mut().insert((device, key), answer.clone());
    monoio::spawn(async move {
        let ttl = i64::try_from(owner.app.config.messaging_idempotency_ttl_secs).unwrap_or(i64::MAX / 2);
        let expires = now_secs().saturating_add(ttl);
        if let Err(e) = owner.app.store.remember_response(device, key, answer, expires).await {
            tracing::warn!(error = %e, "idempotent answer not stored; a retry would be processed again");
        }
        owner.recent_answers.borrow_mut().remove(&(device, key));
    });
}

fn failure(submission_id: &Bytes, code: ErrorCode, message: &str) -> FailedSubmission {
    FailedSubmission {
        submission_id: submission_id.clone(),
        error_code: code as i32,
        error_message: message.into(),
    }
}

/// The answer stored under the key if there is one (BEHAVIOR.md §7.1: the
/// cache is consulted before the body is decoded; a read error is a miss),
/// else `outcome`.
async fn stored_or(
    ctx: &RequestCtx<'_>,
    guard: AnswerKey,
    outcome: Result<Outcome, ApiError>,
) -> Result<Outcome, ApiError> {
    match ctx
        .app
        .store
        .idempotent_response(guard.device, guard.key, guard.now_secs)
        .await
    {
        Ok(Some(earlier)) => Ok(Outcome::Replayed(earlier)),
        _ => outcome,
    }
}

/// Decodes, checks and queues the submissions.
async fn accept(ctx: &RequestCtx<'_>, user: Uuid, guard: AnswerKey, bytes: &[u8]) -> Result<Outcome, ApiError> {
    let request = match SendMessageRequest::decode(bytes) {
        Ok(request) => request,
        Err(e) => {
            let refused = ApiError::BadRequest(format!("Invalid SendMessageRequest protobuf: {e}"));
            return stored_or(ctx, guard, Err(refused)).await;
        }
    };
    if request.messages.len() > ctx.app.config.messaging_send_batch_limit {
        return stored_or(ctx, guard, Err(ApiError::PayloadTooLarge)).await;
    }
    let created_at_ms = now_millis();
    let ttl_secs = i64::try_from(ctx.app.config.ttl_days.saturating_mul(86_400)).unwrap_or(i64::MAX / 2);
    let template = NewMessage {
        target: Uuid::nil(),
        sender_user: user,
        sender_device: guard.device,
        submission_id: Uuid::nil(),
        payload: Bytes::new(),
        created_at_ms,
        expires_at_secs: guard.now_secs.saturating_add(ttl_secs),
        wake_at_ms: Some(millis_after(
            created_at_ms,
            ctx.app.config.notifications_push_delay_secs,
        )),
    };
    let (mut valid, mut failed) = check_submissions(&request, &template);
    if valid.is_empty() {
        let response = encode_answer(failed);
        return stored_or(ctx, guard, Ok(Outcome::Answered(response))).await;
    }
    resolve_targets(ctx, &mut valid).await?;
    let outcomes = match append_on_owners(ctx, &valid, guard).await? {
        GuardedAppend::Appended(outcomes) => outcomes,
        GuardedAppend::Answered(earlier) => return Ok(Outcome::Replayed(earlier)),
    };
    if outcomes.contains(&Appended::NoSuchSender) {
        // A still-valid token of a deleted device.
        return Err(ApiError::Unauthorized);
    }
    let mut stored = 0;
    let mut known = ctx.mesh.context().known_devices.borrow_mut();
    for (m, outcome) in valid.iter().zip(&outcomes) {
        match outcome {
            Appended::Stored(_) => {
                stored += 1;
                known.insert(m.target);
            }
            Appended::NoSuchDevice => {
                let id = Bytes::copy_from_slice(m.submission_id.as_bytes());
                failed.push(failure(&id, ErrorCode::InvalidDevice, "Device not found"));
            }
            Appended::Duplicate | Appended::NoSuchSender => {}
        }
    }
    drop(known);
    ctx.count_n(Counter::MessagesSent, stored);
    Ok(Outcome::Answered(encode_answer(failed)))
}

fn encode_answer(failed: Vec<FailedSubmission>) -> Response {
    let bytes = SendMessageResponse {
        failed_submissions: failed,
    }
    .encode_to_vec();
    answer(bytes.into())
}

/// Splits submissions into messages to queue (filled in from `template`)
/// and per-submission failures (§7.2).
fn check_submissions(request: &SendMessageRequest, template: &NewMessage) -> (Vec<NewMessage>, Vec<FailedSubmission>) {
    let mut failed = Vec::new();
    let mut valid = Vec::with_capacity(request.messages.len());
    for s in &request.messages {
        let (Ok(submission_id), Ok(target)) = (Uuid::from_slice(&s.submission_id), Uuid::from_slice(&s.device_id))
        else {
            let malformed_submission = s.submission_id.len() != 16;
            failed.push(if malformed_submission {
                failure(
                    &s.submission_id,
                    ErrorCode::MalformedSubmissionId,
                    "Invalid submission_id UUID bytes (expected 16)",
                )
            } else {
                failure(
                    &s.submission_id,
                    ErrorCode::MalformedDeviceId,
                    "Invalid device_id UUID bytes (expected 16)",
                )
            });
            continue;
        };
        if s.message.is_empty() {
            failed.push(failure(
                &s.submission_id,
                ErrorCode::MessageMissing,
                "Missing message payload",
            ));
            continue;
        }
        valid.push(NewMessage {
            target,
            submission_id,
            payload: s.message.clone(),
            ..template.clone()
        });
    }
    (valid, failed)
}

/// Points every message at a device before anything is appended: a target
/// that names a user instead (legacy addressing, BEHAVIOR.md §17.2 item 5)
/// becomes that user's primary device, so the request keeps its order and
/// its duplicates rule whichever way a device is named. Targets that name
/// nothing stay as they are and fail in the append. Nothing is read when
/// every target is a device this shard knows.
async fn resolve_targets(ctx: &RequestCtx<'_>, messages: &mut [NewMessage]) -> Result<(), ApiError> {
    let all_known = {
        let mut known = ctx.mesh.context().known_devices.borrow_mut();
        messages.iter().all(|m| known.contains(&m.target))
    };
    if all_known {
        return Ok(());
    }
    let ids = messages.iter().map(|m| m.target).collect();
    let resolved = ctx.app.store.resolve_targets(ids).await?;
    for (m, device) in messages.iter_mut().zip(resolved) {
        if let Some(device) = device {
            m.target = device;
        }
    }
    Ok(())
}

/// Appends `messages` on the owner shards of their targets, all groups at
/// once, each guarded by the request's key; returns each message's outcome
/// in order, or the answer stored under the key.
async fn append_on_owners(
    ctx: &RequestCtx<'_>,
    messages: &[NewMessage],
    guard: AnswerKey,
) -> Result<GuardedAppend, ApiError> {
    let shards = ctx.mesh.shards();
    let mut groups: HashMap<ShardId, Vec<usize>> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        groups
            .entry(placement::device_owner(m.target, shards))
            .or_default()
            .push(i);
    }
    let mut pending = Vec::with_capacity(groups.len());
    for (owner, indexes) in groups {
        let group: Vec<NewMessage> = indexes.iter().filter_map(|i| messages.get(*i).cloned()).collect();
        let mesh = ctx.mesh.clone();
        let task = monoio::spawn(async move { mesh.call(owner, move |o| append_and_notify(o, group, guard)).await });
        pending.push((indexes, task));
    }
    let mut outcomes = vec![Appended::NoSuchDevice; messages.len()];
    for (indexes, task) in pending {
        let group_outcomes = match task.await?? {
            GuardedAppend::Appended(group_outcomes) => group_outcomes,
            answered @ GuardedAppend::Answered(_) => return Ok(answered),
        };
        for (i, outcome) in indexes.into_iter().zip(group_outcomes) {
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = outcome;
            }
        }
    }
    Ok(GuardedAppend::Appended(outcomes))
}

/// On a target owner: appends unless an answer is stored under `guard`,
/// then hands the stored messages to the targets' sessions.
async fn append_and_notify(
    owner: Rc<ShardLocal>,
    group: Vec<NewMessage>,
    guard: AnswerKey,
) -> Result<GuardedAppend, StoreError> {
    let appended = owner.app.store.append_unless_answered(group.clone(), guard).await?;
    let GuardedAppend::Appended(outcomes) = &appended else {
        return Ok(appended);
    };
    let mut arrivals: Vec<(Uuid, Vec<Arrival>)> = Vec::new();
    for (m, outcome) in group.into_iter().zip(outcomes) {
        let Appended::Stored(queued) = outcome else {
            continue;
        };
        let arrival = Arrival {
            expires_at_secs: m.expires_at_secs,
            message: StoredMessage {
                seq: queued.seq,
                id: queued.id,
                sender_user: m.sender_user,
                sender_device: m.sender_device,
                payload: m.payload,
                created_at_ms: m.created_at_ms,
            },
            prev: queued.prev,
        };
        match arrivals.iter_mut().find(|(target, _)| *target == m.target) {
            Some((_, list)) => list.push(arrival),
            None => arrivals.push((m.target, vec![arrival])),
        }
    }
    for (target, list) in arrivals {
        owner.deliver(target, list);
    }
    Ok(appended)
}

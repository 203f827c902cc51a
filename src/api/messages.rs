//! `POST /v1/messages` (BEHAVIOR.md §7): a protobuf `SendMessageRequest`,
//! an `Idempotency-Key` scoped to the sending device, per-submission
//! failures in the `SendMessageResponse`.
//!
//! The key belongs to the sending device, so its owner shard keeps it: the
//! first request claims it there, a repeat that arrives meanwhile waits for
//! the first one's answer, and a repeat after that gets the stored answer
//! without queuing anything. The answer is stored after the response (kept
//! in the owner's memory until that write is in), so a send waits for one
//! journal flush, not two; if the process dies before it is stored, a retry
//! is processed again and the per-submission dedup queues nothing twice. Valid submissions are grouped by the owner
//! shard of their target device and appended there (group-committed); the
//! answer goes out when every group is durable. Deduplication is per
//! (sender device, submission id, target device), kept with the target's
//! mailbox: the reference's rule, narrowed to one target, since clients give
//! every target its own submission id. A target that names a user instead of
//! a device (a legacy client, BEHAVIOR.md §17.2) reaches that user's primary
//! device: targets are resolved in one store read before anything is
//! appended.

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
use crate::store::{Appended, NewMessage, StoreError, StoredMessage};
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
    /// Answered before: the same answer again.
    Replay(Bytes),
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

/// `POST /v1/messages`.
pub async fn send(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let bytes = body.read_to_vec(ctx.app.config.http_body_bytes_max).await?;
    let device = principal.device_id.ok_or_else(device_scope_required)?;
    let key = idempotency_key(ctx)?;
    let guard = ClaimGuard {
        claim: Some((ctx.mesh.clone(), device, key)),
    };
    loop {
        let outcome = ctx
            .on_device_owner(device, move |owner| claim_key(owner, device, key))
            .await??;
        let earlier = match outcome {
            Claim::Mine => break,
            Claim::Replay(answer) => Some(answer),
            Claim::Wait(first) => first.await.ok().flatten(),
        };
        if let Some(answer) = earlier {
            guard.forget();
            return Ok(Response::bytes(StatusCode::OK, PROTOBUF, answer));
        }
    }
    let answer = accept(ctx, principal.user_id, device, &bytes).await;
    if let Ok(response) = &answer {
        guard.release(Some(response.body.clone())).await;
    }
    answer
}

/// On the sending device's owner: claims `key`, or says whom to wait for.
async fn claim_key(owner: Rc<ShardLocal>, device: Uuid, key: Uuid) -> Result<Claim, StoreError> {
    if let Some(waiters) = owner.in_flight.borrow_mut().get_mut(&(device, key)) {
        let (tx, rx) = oneshot::channel();
        waiters.push(tx);
        return Ok(Claim::Wait(rx));
    }
    if let Some(answer) = owner.recent_answers.borrow().get(&(device, key)) {
        return Ok(Claim::Replay(answer.clone()));
    }
    owner.in_flight.borrow_mut().insert((device, key), Vec::new());
    match owner.app.store.idempotent_response(device, key, now_secs()).await {
        Ok(None) => Ok(Claim::Mine),
        Ok(Some(answer)) => {
            finish(&owner, device, key, Some(answer.clone()));
            Ok(Claim::Replay(answer))
        }
        Err(e) => {
            finish(&owner, device, key, None);
            Err(e)
        }
    }
}

/// On the owner: ends the claim and hands `answer` to the waiters.
fn finish(owner: &ShardLocal, device: Uuid, key: Uuid, answer: Option<Bytes>) {
    let waiters = owner.in_flight.borrow_mut().remove(&(device, key)).unwrap_or_default();
    for waiter in waiters {
        waiter.send(answer.clone());
    }
}

/// A claimed key. Released with the answer on success; dropped (a failure,
/// a timeout, a cancelled request) it releases with none, so waiters retry.
struct ClaimGuard {
    claim: Option<(Rc<MeshEndpoint<ShardLocal>>, Uuid, Uuid)>,
}

impl ClaimGuard {
    /// Stores the answer for the TTL, then releases the key.
    async fn release(mut self, answer: Option<Bytes>) {
        if let Some((mesh, device, key)) = self.claim.take() {
            release(mesh, device, key, answer).await;
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
            monoio::spawn(release(mesh, device, key, None));
        }
    }
}

/// On the sending device's owner: stores a successful answer for the TTL,
/// then ends the claim.
async fn release(mesh: Rc<MeshEndpoint<ShardLocal>>, device: Uuid, key: Uuid, answer: Option<Bytes>) {
    let owner = placement::device_owner(device, mesh.shards());
    let _ = mesh
        .call(owner, move |o| async move { settle(o, device, key, answer) })
        .await;
}

/// On the owner: ends the claim at once and stores a successful answer in
/// the background. Until that write is in, the answer is replayed from
/// memory, so the sender never waits for a second journal flush and a
/// repeat in between still gets the same answer.
fn settle(owner: Rc<ShardLocal>, device: Uuid, key: Uuid, answer: Option<Bytes>) {
    finish(&owner, device, key, answer.clone());
    let Some(answer) = answer else {
        return;
    };
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

/// Decodes, checks and queues the submissions; returns the 200 answer.
async fn accept(ctx: &RequestCtx<'_>, user: Uuid, device: Uuid, bytes: &[u8]) -> Result<Response, ApiError> {
    let request = SendMessageRequest::decode(bytes)
        .map_err(|e| ApiError::BadRequest(format!("Invalid SendMessageRequest protobuf: {e}")))?;
    if request.messages.len() > ctx.app.config.messaging_send_batch_limit {
        return Err(ApiError::PayloadTooLarge);
    }
    let created_at_ms = now_millis();
    let ttl_secs = i64::try_from(ctx.app.config.ttl_days.saturating_mul(86_400)).unwrap_or(i64::MAX / 2);
    let template = NewMessage {
        target: Uuid::nil(),
        sender_user: user,
        sender_device: device,
        submission_id: Uuid::nil(),
        payload: Bytes::new(),
        created_at_ms,
        expires_at_secs: now_secs().saturating_add(ttl_secs),
        wake_at_ms: Some(millis_after(
            created_at_ms,
            ctx.app.config.notifications_push_delay_secs,
        )),
    };
    let (mut valid, mut failed) = check_submissions(&request, &template);
    resolve_targets(ctx, &mut valid).await?;
    let outcomes = append_on_owners(ctx, &valid).await?;
    if outcomes.contains(&Appended::NoSuchSender) {
        // A still-valid token of a deleted device.
        return Err(ApiError::Unauthorized);
    }
    let stored = outcomes.iter().filter(|o| matches!(o, Appended::Stored(_))).count();
    for (m, outcome) in valid.iter().zip(&outcomes) {
        if *outcome == Appended::NoSuchDevice {
            let id = Bytes::copy_from_slice(m.submission_id.as_bytes());
            failed.push(failure(&id, ErrorCode::InvalidDevice, "Device not found"));
        }
    }
    if let Some(metrics) = ctx.app.shard_metrics(ctx.mesh.me()) {
        metrics.add(Counter::MessagesSent, stored as u64);
    }
    let answer = SendMessageResponse {
        failed_submissions: failed,
    }
    .encode_to_vec();
    Ok(Response::bytes(StatusCode::OK, PROTOBUF, answer))
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
/// nothing stay as they are and fail in the append.
async fn resolve_targets(ctx: &RequestCtx<'_>, messages: &mut [NewMessage]) -> Result<(), ApiError> {
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
/// once, and returns each message's outcome in order.
async fn append_on_owners(ctx: &RequestCtx<'_>, messages: &[NewMessage]) -> Result<Vec<Appended>, ApiError> {
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
        let task = monoio::spawn(async move { mesh.call(owner, move |o| append_and_notify(o, group)).await });
        pending.push((indexes, task));
    }
    let mut outcomes = vec![Appended::NoSuchDevice; messages.len()];
    for (indexes, task) in pending {
        let group_outcomes = task.await??;
        for (i, outcome) in indexes.into_iter().zip(group_outcomes) {
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = outcome;
            }
        }
    }
    Ok(outcomes)
}

/// On a target owner: appends, then hands the stored messages to the
/// targets' sessions.
async fn append_and_notify(owner: Rc<ShardLocal>, group: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
    let outcomes = owner.app.store.append(group.clone()).await?;
    let mut arrivals: Vec<(Uuid, Vec<Arrival>)> = Vec::new();
    for (m, outcome) in group.into_iter().zip(&outcomes) {
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
    Ok(outcomes)
}

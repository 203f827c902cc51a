//! `POST /v1/messages` (BEHAVIOR.md §7): a protobuf `SendMessageRequest`,
//! an `Idempotency-Key` scoped to the sending device, per-submission
//! failures in the `SendMessageResponse`.
//!
//! A send is one store transaction ([`crate::store::Mailboxes::append_and_answer`]):
//! if an answer is stored under (sending device, key), it comes back and
//! nothing is queued; otherwise the valid submissions are appended and the
//! answer is stored with them, so the answer is durable exactly when the
//! messages are, and a repeat (even one that arrives while the first is in
//! flight: the store serializes sends) gets the first answer, never a
//! second copy. A body that appends nothing because it is refused
//! (undecodable, no submission at all, over the batch limit) is looked up
//! on its own, and an answer stored under the key wins over its error
//! (§7.1: the cache is consulted before the body is decoded). A body
//! without a submission (an empty body included) is a 400, as the contract
//! requires a body; the reference answers 200 with an empty answer.
//!
//! Deduplication is per (sender device, submission id, target device), kept
//! with the target's mailbox: the reference's rule, narrowed to one target,
//! since clients give every target its own submission id. A target that
//! names a user instead of a device (a legacy client, BEHAVIOR.md §17.2)
//! reaches that user's primary device: targets not known to be devices
//! ([`crate::node::known_devices`]) are resolved in one store read first.
//! Once appended, the messages go to their targets' sessions through the
//! event bus; the answer does not wait for that.

use std::rc::Rc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use prost::Message;
use uuid::Uuid;

use super::context::RequestCtx;
use super::error::{device_scope_required, ApiError};
use crate::gateway::events::Arrival;
use crate::http::{Body, Response};
use crate::metrics::Counter;
use crate::node::ShardLocal;
use crate::proto::send_message_response::{ErrorCode, FailedSubmission};
use crate::proto::{wire, SendMessageRequest, SendMessageResponse};
use crate::store::{AnswerKey, AnswerOf, Appended, GuardedAppend, NewMessage, Queued, StoredMessage};
use crate::util::time::{millis_after, now_millis, now_secs};

/// `Content-Type` of the answer, as the contract says.
const PROTOBUF: HeaderValue = HeaderValue::from_static("application/x-protobuf");

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

fn seconds(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX / 2)
}

/// `POST /v1/messages`.
pub async fn send(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let bytes = body.read_to_vec(ctx.app.config.http_body_bytes_max).await?;
    let device = principal.device_id.ok_or_else(device_scope_required)?;
    let now = now_secs();
    let key = AnswerKey {
        device,
        key: idempotency_key(ctx)?,
        now_secs: now,
        expires_at_secs: now.saturating_add(seconds(ctx.app.config.messaging_idempotency_ttl_secs)),
    };
    let request = match decode_request(&bytes, ctx.app.config.messaging_send_batch_limit) {
        Ok(request) => request,
        Err(refused) => return stored_or(ctx, key, refused).await,
    };
    let (mut valid, failed) = check_submissions(&request, &template(ctx, principal.user_id, key));
    resolve_targets(ctx, &mut valid).await?;
    let answer_of = answer_of(&valid, failed);
    let stored = match append_and_deliver(ctx, valid, key, answer_of).await? {
        GuardedAppend::Answered(earlier) => return Ok(answer(earlier)),
        GuardedAppend::Appended { answer, .. } => answer,
    };
    // No answer is stored for a token whose device was deleted.
    Ok(answer(stored.ok_or(ApiError::Unauthorized)?))
}

/// Decodes a send: 413 above `limit` submissions, 400 when the body is not
/// a `SendMessageRequest` or holds no submission. The submissions are
/// counted before anything is built: prost makes a 96-byte `Submission` of
/// every 2-byte empty one (a body both too long and broken inside a
/// submission is therefore a 413).
fn decode_request(bytes: &[u8], limit: usize) -> Result<SendMessageRequest, ApiError> {
    let undecodable =
        |e: &dyn std::fmt::Display| ApiError::BadRequest(format!("Invalid SendMessageRequest protobuf: {e}"));
    match wire::submissions(bytes) {
        Err(e) => Err(undecodable(&e)),
        Ok(0) => Err(ApiError::BadRequest("SendMessageRequest holds no submission".into())),
        Ok(n) if n > limit => Err(ApiError::PayloadTooLarge),
        Ok(_) => SendMessageRequest::decode(bytes).map_err(|e| undecodable(&e)),
    }
}

/// Appends `messages` and stores the request's answer in one store
/// transaction, then hands what was stored to the targets' sessions. In a
/// task of its own, so that a request dropped at its deadline still hands
/// over what committed (open sessions would otherwise only see it with
/// their next message). With several relay nodes the key is held for the
/// transaction's length ([`crate::node::send_claims`]).
async fn append_and_deliver(
    ctx: &RequestCtx<'_>,
    messages: Vec<NewMessage>,
    key: AnswerKey,
    answer_of: AnswerOf,
) -> Result<GuardedAppend, ApiError> {
    let local = ctx.local.clone();
    monoio::spawn(async move {
        let _claim = local.app.claim_send(key.device, key.key).await;
        let appended = local
            .app
            .store
            .append_and_answer(messages.clone(), key, answer_of)
            .await?;
        if let GuardedAppend::Appended { outcomes, .. } = &appended {
            hand_over(&local, messages, outcomes);
        }
        Ok(appended)
    })
    .await
}

/// The answer stored under the key if there is one, else `refused`.
async fn stored_or(ctx: &RequestCtx<'_>, key: AnswerKey, refused: ApiError) -> Result<Response, ApiError> {
    match ctx
        .app
        .store
        .idempotent_response(key.device, key.key, key.now_secs)
        .await
    {
        Ok(Some(earlier)) => Ok(answer(earlier)),
        _ => Err(refused),
    }
}

/// What every message of the request shares.
fn template(ctx: &RequestCtx<'_>, user: Uuid, key: AnswerKey) -> NewMessage {
    let created_at_ms = now_millis();
    NewMessage {
        target: Uuid::nil(),
        sender_user: user,
        sender_device: key.device,
        submission_id: Uuid::nil(),
        payload: Bytes::new(),
        created_at_ms,
        expires_at_secs: key.now_secs.saturating_add(ctx.app.config.ttl_secs()),
        wake_at_ms: Some(millis_after(
            created_at_ms,
            ctx.app.config.notifications_push_delay_secs,
        )),
    }
}

/// Makes the `SendMessageResponse` from the appends' outcomes: the
/// structural failures, then the unknown targets (§7.2); nothing when the
/// sending device is gone.
fn answer_of(valid: &[NewMessage], mut failed: Vec<FailedSubmission>) -> AnswerOf {
    let ids: Vec<Uuid> = valid.iter().map(|m| m.submission_id).collect();
    Box::new(move |outcomes: &[Appended]| {
        if outcomes.contains(&Appended::NoSuchSender) {
            return None;
        }
        for (id, outcome) in ids.iter().zip(outcomes) {
            if *outcome == Appended::NoSuchDevice {
                let id = Bytes::copy_from_slice(id.as_bytes());
                failed.push(failure(&id, ErrorCode::InvalidDevice, "Device not found"));
            }
        }
        let response = SendMessageResponse {
            failed_submissions: failed,
        };
        Some(response.encode_to_vec().into())
    })
}

fn failure(submission_id: &Bytes, code: ErrorCode, message: &str) -> FailedSubmission {
    FailedSubmission {
        submission_id: submission_id.clone(),
        error_code: code as i32,
        error_message: message.into(),
    }
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
        let mut known = ctx.local.known_devices.borrow_mut();
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

/// Hands the stored messages to their targets' open sessions through the
/// event bus; counts them and remembers their targets as devices. Never
/// waits.
fn hand_over(local: &Rc<ShardLocal>, messages: Vec<NewMessage>, outcomes: &[Appended]) {
    let mut arrivals = Vec::with_capacity(messages.len());
    {
        let mut known = local.known_devices.borrow_mut();
        for (m, outcome) in messages.into_iter().zip(outcomes) {
            let Appended::Stored(queued) = outcome else {
                continue;
            };
            known.insert(m.target);
            arrivals.push((m.target, arrival(m, queued)));
        }
    }
    local.count(Counter::MessagesSent, arrivals.len());
    local.events.arrived(arrivals);
}

/// A stored message as its target's sessions get it.
fn arrival(m: NewMessage, queued: &Queued) -> Arrival {
    Arrival {
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
    }
}

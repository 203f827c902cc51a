//! The conformance suite of the storage interface: every backend must pass
//! it. It is written against the traits only ([`Store`]), so the ScyllaDB
//! backend will run the very same cases. Each case gets a fresh, empty store
//! from the backend's harness and panics on a violation.

use uuid::Uuid;

use super::*;
use crate::auth::refresh::hash_text;

/// One case: runs against an empty store.
pub type Case = for<'a> fn(&'a dyn Store) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Every case, by name, for a backend's harness to run one by one.
pub const CASES: &[(&str, Case)] = &[
    ("usernames_are_unique", |s| Box::pin(usernames_are_unique(s))),
    ("devices_round_trip_and_cascade", |s| {
        Box::pin(devices_round_trip_and_cascade(s))
    }),
    ("device_limit_holds", |s| Box::pin(device_limit_holds(s))),
    ("user_with_first_device_is_atomic", |s| {
        Box::pin(user_with_first_device_is_atomic(s))
    }),
    ("refresh_rotation_and_reuse", |s| {
        Box::pin(refresh_rotation_and_reuse(s))
    }),
    ("refresh_expiry_and_purge", |s| Box::pin(refresh_expiry_and_purge(s))),
    ("key_refill_takeover_and_bundles", |s| {
        Box::pin(key_refill_takeover_and_bundles(s))
    }),
    ("mailbox_order_dedup_ack", |s| Box::pin(mailbox_order_dedup_ack(s))),
    ("mailbox_appends_name_their_predecessor", |s| {
        Box::pin(mailbox_appends_name_their_predecessor(s))
    }),
    ("mailbox_expiry_and_pruning", |s| {
        Box::pin(mailbox_expiry_and_pruning(s))
    }),
    ("deleted_senders_messages_are_hidden_then_swept", |s| {
        Box::pin(deleted_senders_messages_are_hidden_then_swept(s))
    }),
    ("idempotency_and_tickets", |s| Box::pin(idempotency_and_tickets(s))),
    ("sends_store_their_answer_with_their_messages", |s| {
        Box::pin(sends_store_their_answer_with_their_messages(s))
    }),
    ("push_tokens_and_jobs", |s| Box::pin(push_tokens_and_jobs(s))),
    ("dead_push_tokens_and_cascade", |s| {
        Box::pin(dead_push_tokens_and_cascade(s))
    }),
    ("attachments_expire_oldest_first", |s| {
        Box::pin(attachments_expire_oldest_first(s))
    }),
    ("backup_versions_lock_optimistically", |s| {
        Box::pin(backup_versions_lock_optimistically(s))
    }),
    ("stale_backup_uploads_are_found_and_reset", |s| {
        Box::pin(stale_backup_uploads_are_found_and_reset(s))
    }),
    ("backup_row_goes_with_its_device", |s| {
        Box::pin(backup_row_goes_with_its_device(s))
    }),
    ("account_deletion_is_one_decision", |s| {
        Box::pin(account_deletion_is_one_decision(s))
    }),
    ("account_deletion_leaves_the_name_free", |s| {
        Box::pin(account_deletion_leaves_the_name_free(s))
    }),
    ("password_change_moves_the_generation", |s| {
        Box::pin(password_change_moves_the_generation(s))
    }),
    ("revocations_are_logged_and_purged", |s| {
        Box::pin(revocations_are_logged_and_purged(s))
    }),
    ("device_deletion_revokes_its_credentials", |s| {
        Box::pin(device_deletion_revokes_its_credentials(s))
    }),
];

fn user(name: &str) -> UserRecord {
    UserRecord {
        id: Uuid::now_v7(),
        username: name.into(),
        password_hash: "$argon2id$x".into(),
        created_at_micros: 1,
        legacy: false,
        token_generation: 0,
        user_scope_generation: 0,
    }
}

fn refresh(text: &str, user_id: Uuid, device_id: Option<Uuid>, family: Uuid, expires: i64) -> RefreshRecord {
    RefreshRecord {
        hash: hash_text(text),
        user_id,
        device_id,
        family,
        expires_at_secs: expires,
        generation: 0,
        user_scope_generation: 0,
    }
}

/// Creates account `id`, named after it, with a refresh token named
/// `owner-<id>`.
pub async fn account_with_id(store: &dyn Store, id: Uuid) {
    let record = UserRecord {
        id,
        ..user(&format!("u{}", id.simple()))
    };
    let token = refresh(&format!("owner-{id}"), id, None, Uuid::new_v4(), i64::MAX / 4);
    store.create_user(record, token).await.unwrap();
}

/// Creates a new account (see [`account_with_id`]); returns its id.
async fn account(store: &dyn Store) -> Uuid {
    let id = Uuid::now_v7();
    account_with_id(store, id).await;
    id
}

/// Creates `new` (limit 10), first creating its owner's account if it has
/// none: a device needs an account.
pub async fn create_device(store: &dyn Store, new: NewDevice) {
    let owner = new.device.user_id;
    if store.user(owner).await.unwrap().is_none() {
        account_with_id(store, owner).await;
    }
    store.create_device(new, 10).await.unwrap();
}

/// A device of `user_id` with four one-time prekeys and a refresh token
/// named by `token`.
pub fn new_device(user_id: Uuid, created: i64, token: &str) -> NewDevice {
    let id = Uuid::now_v7();
    NewDevice {
        device: DeviceRecord {
            id,
            user_id,
            name: None,
            created_at_micros: created,
            identity_key: PublicKey([5; 33]),
            registration_id: -7,
        },
        signed_prekey: SignedPreKey {
            key_id: 3,
            public_key: PublicKey([5; 33]),
            signature: Signature([9; 64]),
        },
        one_time_prekeys: (0..4)
            .map(|k| OneTimePreKey {
                key_id: k,
                public_key: PublicKey([5; 33]),
            })
            .collect(),
        refresh: refresh(token, user_id, Some(id), Uuid::new_v4(), i64::MAX / 4),
    }
}

async fn usernames_are_unique(store: &dyn Store) {
    let alice = user("alice");
    store
        .create_user(alice.clone(), refresh("a", alice.id, None, Uuid::new_v4(), 10))
        .await
        .unwrap();
    let again = store
        .create_user(user("alice"), refresh("b", Uuid::now_v7(), None, Uuid::new_v4(), 10))
        .await;
    assert!(matches!(again, Err(StoreError::UsernameTaken)));
    assert_eq!(store.user_by_name("alice").await.unwrap(), Some(alice));
    assert_eq!(store.user_by_name("bob").await.unwrap(), None);
}

async fn user_with_first_device_is_atomic(store: &dyn Store) {
    let legacy = UserRecord {
        legacy: true,
        ..user("legacy")
    };
    let first = new_device(legacy.id, 5, "legacy-token");
    store
        .create_user_with_device(legacy.clone(), first.clone())
        .await
        .unwrap();
    assert_eq!(store.user_by_name("legacy").await.unwrap(), Some(legacy.clone()));
    assert_eq!(store.devices_of(legacy.id).await.unwrap(), vec![first.device.clone()]);
    assert_eq!(store.one_time_prekey_count(first.device.id).await.unwrap(), 4);
    let nobody = Uuid::now_v7();
    assert_eq!(
        store
            .resolve_targets(vec![first.device.id, legacy.id, nobody])
            .await
            .unwrap(),
        vec![Some(first.device.id), Some(first.device.id), None],
        "a device names itself, a user its oldest device"
    );
    // A taken name writes nothing: neither user nor device.
    let clash = user("legacy");
    let second = new_device(clash.id, 6, "clash-token");
    let again = store.create_user_with_device(clash.clone(), second.clone()).await;
    assert!(matches!(again, Err(StoreError::UsernameTaken)));
    assert!(store.devices_of(clash.id).await.unwrap().is_empty());
    assert_eq!(store.device(second.device.id).await.unwrap(), None);
}

async fn devices_round_trip_and_cascade(store: &dyn Store) {
    let owner = Uuid::now_v7();
    let (first, second) = (new_device(owner, 20, "t1"), new_device(owner, 10, "t2"));
    create_device(store, first.clone()).await;
    create_device(store, second.clone()).await;
    let listed: Vec<Uuid> = store.devices_of(owner).await.unwrap().iter().map(|d| d.id).collect();
    assert_eq!(listed, vec![second.device.id, first.device.id], "oldest first");
    assert_eq!(store.device(first.device.id).await.unwrap(), Some(first.device.clone()));
    assert_eq!(
        store.signed_prekeys(first.device.id).await.unwrap(),
        vec![first.signed_prekey.clone()]
    );
    assert_eq!(store.one_time_prekey_count(first.device.id).await.unwrap(), 4);
    let stranger = Uuid::now_v7();
    assert_eq!(
        store
            .rename_device(stranger, first.device.id, Some("x".into()))
            .await
            .unwrap(),
        None
    );
    let renamed = store
        .rename_device(owner, first.device.id, Some("Phone".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Phone"));
    assert!(store.delete_device(stranger, first.device.id).await.unwrap().is_none());
    assert!(store.delete_device(owner, first.device.id).await.unwrap().is_some());
    assert_eq!(store.device(first.device.id).await.unwrap(), None);
    assert!(store.signed_prekeys(first.device.id).await.unwrap().is_empty());
    assert_eq!(store.one_time_prekey_count(first.device.id).await.unwrap(), 0);
    let rotated = store
        .rotate_refresh(hash_text("t1"), hash_text("t1b"), 0, 100)
        .await
        .unwrap();
    assert_eq!(rotated, Rotation::Unknown, "the device's refresh tokens went with it");
    assert_eq!(store.devices_of(owner).await.unwrap().len(), 1);
}

async fn device_limit_holds(store: &dyn Store) {
    let owner = account(store).await;
    let creations = (0..5).map(|i| store.create_device(new_device(owner, i, &format!("d{i}")), 3));
    let mut outcomes = Vec::new();
    for creation in creations {
        outcomes.push(creation.await);
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 3);
    assert!(outcomes.iter().any(|o| matches!(o, Err(StoreError::DeviceLimit(3)))));
    assert_eq!(store.devices_of(owner).await.unwrap().len(), 3);
}

async fn refresh_rotation_and_reuse(store: &dyn Store) {
    let (owner, family) = (account(store).await, Uuid::new_v4());
    store
        .insert_refresh(refresh("r0", owner, None, family, 1_000))
        .await
        .unwrap();
    let other = refresh("other", owner, None, Uuid::new_v4(), 1_000);
    store.insert_refresh(other).await.unwrap();
    let Rotation::Rotated(spent) = store
        .rotate_refresh(hash_text("r0"), hash_text("r1"), 10, 500)
        .await
        .unwrap()
    else {
        panic!("a valid token rotates");
    };
    assert_eq!((spent.user_id, spent.family), (owner, family));
    assert_eq!(
        store
            .rotate_refresh(hash_text("r0"), hash_text("r2"), 10, 500)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert_eq!(
        store
            .rotate_refresh(hash_text("r1"), hash_text("r3"), 10, 500)
            .await
            .unwrap(),
        Rotation::Unknown,
        "family revoked"
    );
    let survivor = store
        .rotate_refresh(hash_text("other"), hash_text("o1"), 10, 500)
        .await
        .unwrap();
    assert!(matches!(survivor, Rotation::Rotated(_)), "other sessions unaffected");
    store.revoke_refresh(Uuid::now_v7(), hash_text("o1")).await.unwrap();
    assert!(matches!(
        store
            .rotate_refresh(hash_text("o1"), hash_text("o2"), 10, 500)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
    store.revoke_refresh(owner, hash_text("o2")).await.unwrap();
    assert_eq!(
        store
            .rotate_refresh(hash_text("o2"), hash_text("o3"), 10, 500)
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

async fn refresh_expiry_and_purge(store: &dyn Store) {
    let owner = account(store).await;
    store
        .insert_refresh(refresh("old", owner, None, Uuid::new_v4(), 100))
        .await
        .unwrap();
    store
        .insert_refresh(refresh("new", owner, None, Uuid::new_v4(), 10_000))
        .await
        .unwrap();
    store
        .insert_refresh(refresh("old2", owner, None, Uuid::new_v4(), 50))
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate_refresh(hash_text("old"), hash_text("x"), 101, 200)
            .await
            .unwrap(),
        Rotation::Expired
    );
    assert_eq!(
        store
            .rotate_refresh(hash_text("old"), hash_text("x"), 101, 200)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    assert_eq!(store.purge_expired_refresh(5_000, 10).await.unwrap(), 1);
    assert_eq!(
        store
            .rotate_refresh(hash_text("old2"), hash_text("y"), 0, 200)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    assert!(matches!(
        store
            .rotate_refresh(hash_text("new"), hash_text("z"), 0, 200)
            .await
            .unwrap(),
        Rotation::Rotated(_)
    ));
}

fn upload(spk_id: i32, identity: Option<PublicKey>, one_time: &[i32]) -> KeyUpload {
    KeyUpload {
        identity: identity.map(|k| (k, 99)),
        signed_prekey: SignedPreKey {
            key_id: spk_id,
            public_key: PublicKey([5; 33]),
            signature: Signature([1; 64]),
        },
        one_time_prekeys: one_time
            .iter()
            .map(|&key_id| OneTimePreKey {
                key_id,
                public_key: PublicKey([5; 33]),
            })
            .collect(),
        pre_keys_max: 5,
    }
}

fn accept_all() -> SignatureCheck {
    Box::new(|_| true)
}

fn message(target: Uuid, sender: Uuid, submission: Uuid, expires: i64) -> NewMessage {
    NewMessage {
        target,
        sender_user: Uuid::now_v7(),
        sender_device: sender,
        submission_id: submission,
        payload: bytes::Bytes::from_static(b"ciphertext"),
        created_at_ms: 1_700_000_000_000,
        expires_at_secs: expires,
        wake_at_ms: Some(1_700_000_002_000),
    }
}

async fn key_refill_takeover_and_bundles(store: &dyn Store) {
    let device = new_device(Uuid::now_v7(), 1, "k");
    let id = device.device.id;
    create_device(store, device).await;
    let stale = store.upload_keys(id, upload(3, None, &[]), accept_all()).await.unwrap();
    assert_eq!(
        stale,
        Err(UploadRejection::SignedPreKeyIdNotIncreasing { new: 3, current: 3 })
    );
    let refused = store
        .upload_keys(id, upload(4, None, &[]), Box::new(|_| false))
        .await
        .unwrap();
    assert_eq!(refused, Err(UploadRejection::InvalidSignature));
    let refilled = store
        .upload_keys(id, upload(4, None, &[1, 10]), accept_all())
        .await
        .unwrap();
    assert_eq!(refilled, Ok(UploadOutcome::Refilled));
    // 4 stored + 2 sent - cap 5: the oldest (id 0) goes; id 1 exists, so only 10 is added.
    assert_eq!(store.one_time_prekey_count(id).await.unwrap(), 4);
    assert_eq!(
        store
            .signed_prekeys(id)
            .await
            .unwrap()
            .iter()
            .map(|k| k.key_id)
            .collect::<Vec<_>>(),
        vec![4]
    );
    let bundle = store.take_bundle(id).await.unwrap().unwrap();
    assert_eq!((bundle.signed_prekey.key_id, bundle.remaining), (4, 3));
    assert!(bundle.one_time_prekey.is_some());
    store
        .append(vec![message(id, Uuid::now_v7(), Uuid::new_v4(), i64::MAX / 4)])
        .await
        .unwrap();
    let mut new_identity = [5u8; 33];
    new_identity[1] = 1;
    let took = store
        .upload_keys(id, upload(1, Some(PublicKey(new_identity)), &[7]), accept_all())
        .await
        .unwrap();
    assert_eq!(took, Ok(UploadOutcome::TookOver));
    assert!(
        store.fetch(id, None, 10, 0).await.unwrap().is_empty(),
        "takeover wipes the queue"
    );
    assert_eq!(store.one_time_prekey_count(id).await.unwrap(), 1);
    assert_eq!(
        store.device(id).await.unwrap().unwrap().identity_key,
        PublicKey(new_identity)
    );
    let last = store.take_bundle(id).await.unwrap().unwrap();
    assert_eq!((last.one_time_prekey.map(|k| k.key_id), last.remaining), (Some(7), 0));
    assert_eq!(store.take_bundle(id).await.unwrap().unwrap().one_time_prekey, None);
    assert_eq!(store.take_bundle(Uuid::now_v7()).await.unwrap(), None);
}

async fn mailbox_order_dedup_ack(store: &dyn Store) {
    let device = new_device(Uuid::now_v7(), 1, "m");
    let target = device.device.id;
    create_device(store, device).await;
    let sender_device = new_device(Uuid::now_v7(), 1, "sender");
    let sender = sender_device.device.id;
    create_device(store, sender_device).await;
    let dup = Uuid::new_v4();
    let batch = vec![
        message(target, sender, dup, i64::MAX / 4),
        message(target, sender, dup, i64::MAX / 4),
        message(Uuid::now_v7(), sender, Uuid::new_v4(), i64::MAX / 4),
        message(target, sender, Uuid::new_v4(), i64::MAX / 4),
    ];
    let outcomes = store.append(batch).await.unwrap();
    assert!(matches!(outcomes[0], Appended::Stored(_)));
    assert_eq!(outcomes[1], Appended::Duplicate);
    assert_eq!(outcomes[2], Appended::NoSuchDevice);
    let again = store
        .append(vec![message(target, sender, dup, i64::MAX / 4)])
        .await
        .unwrap();
    assert_eq!(again, vec![Appended::Duplicate], "dedup across requests");
    // The key is (sender device, submission id, target device): the same
    // id to another target, or from another sending device, is stored.
    let elsewhere = new_device(Uuid::now_v7(), 1, "m-elsewhere");
    let (second_target, second_sender) = (elsewhere.device.id, Uuid::now_v7());
    create_device(store, elsewhere).await;
    let mut other_sender = new_device(Uuid::now_v7(), 1, "m-other-sender");
    other_sender.device.id = second_sender;
    create_device(store, other_sender).await;
    let spread = store
        .append(vec![
            message(second_target, sender, dup, i64::MAX / 4),
            message(target, second_sender, dup, i64::MAX / 4),
        ])
        .await
        .unwrap();
    assert!(
        spread.iter().all(|o| matches!(o, Appended::Stored(_))),
        "per target and per sender: {spread:?}"
    );
    let queued = store.fetch(target, None, 10, 0).await.unwrap();
    let senders: Vec<Uuid> = queued.iter().map(|m| m.sender_device).collect();
    assert_eq!(senders, vec![sender, sender, second_sender]);
    assert!(queued[0].seq < queued[1].seq);
    assert_eq!(store.fetch(target, Some(queued[0].seq), 10, 0).await.unwrap().len(), 2);
    assert_eq!(
        store.ack(Uuid::now_v7(), vec![queued[0].id]).await.unwrap(),
        0,
        "acks are scoped to the device"
    );
    assert_eq!(store.ack(target, vec![queued[0].id, Uuid::new_v4()]).await.unwrap(), 1);
    assert_eq!(store.fetch(target, None, 10, 0).await.unwrap().len(), 2);
    let resent = store
        .append(vec![message(target, sender, dup, i64::MAX / 4)])
        .await
        .unwrap();
    assert!(
        matches!(resent[0], Appended::Stored(_)),
        "an acked pair can be stored again"
    );
}

fn queued(outcome: &Appended) -> Queued {
    match outcome {
        Appended::Stored(queued) => *queued,
        other => panic!("not stored: {other:?}"),
    }
}

/// Each stored message names a predecessor: a position at or after the
/// newest message queued before it in its mailbox (within one append too),
/// and before itself; or none when the mailbox held nothing. What a live
/// reader needs to know that it missed nothing: at or past `prev`, it did.
/// (The embedded store names the newest one exactly; its own tests say so.)
async fn mailbox_appends_name_their_predecessor(store: &dyn Store) {
    let device = new_device(Uuid::now_v7(), 1, "p");
    let target = device.device.id;
    create_device(store, device).await;
    let other = new_device(Uuid::now_v7(), 1, "p2");
    let elsewhere = other.device.id;
    create_device(store, other).await;
    let send = |to: Uuid| message(to, target, Uuid::new_v4(), i64::MAX / 4);
    let first = store
        .append(vec![send(target), send(elsewhere), send(target)])
        .await
        .unwrap();
    let (a, b) = (queued(&first[0]), queued(&first[2]));
    let before = |q: Queued| q.prev.is_none_or(|p| p < q.seq);
    assert!(before(a) && before(queued(&first[1])), "empty mailboxes");
    let names = |q: Queued, newest: u64| q.prev.is_some_and(|p| newest <= p && p < q.seq);
    assert!(names(b, a.seq), "the earlier message of the same append: {a:?} {b:?}");
    let fetched = store.fetch(target, None, 10, 0).await.unwrap();
    assert_eq!(
        fetched.iter().map(|m| (m.seq, m.id)).collect::<Vec<_>>(),
        vec![(a.seq, a.id), (b.seq, b.id)]
    );
    store.ack(target, vec![a.id]).await.unwrap();
    let c = queued(&store.append(vec![send(target)]).await.unwrap()[0]);
    assert!(names(c, b.seq), "{b:?} {c:?}");
    store.ack(target, vec![b.id, c.id]).await.unwrap();
    let d = queued(&store.append(vec![send(target)]).await.unwrap()[0]);
    assert!(before(d), "everything before it was acked");
    assert!(d.seq > c.seq);
}

async fn mailbox_expiry_and_pruning(store: &dyn Store) {
    let device = new_device(Uuid::now_v7(), 1, "e");
    let target = device.device.id;
    create_device(store, device).await;
    let sender = target;
    let batch: Vec<NewMessage> = (0..5)
        .map(|i| message(target, sender, Uuid::new_v4(), if i == 0 { 100 } else { 10_000 }))
        .collect();
    store.append(batch).await.unwrap();
    assert_eq!(
        store.fetch(target, None, 10, 200).await.unwrap().len(),
        4,
        "expired messages are hidden"
    );
    assert_eq!(
        store.sweep_mailbox(target, 200, 10).await.unwrap(),
        1,
        "the expired one"
    );
    let kept = store.fetch(target, None, 10, 0).await.unwrap();
    assert_eq!(kept.len(), 4);
    assert_eq!(store.sweep_mailbox(target, 200, 2).await.unwrap(), 2, "the oldest two");
    let after = store.fetch(target, None, 10, 0).await.unwrap();
    assert_eq!(
        after.iter().map(|m| m.seq).collect::<Vec<_>>(),
        kept[2..].iter().map(|m| m.seq).collect::<Vec<_>>()
    );
    assert!(store.device_page(None, 100).await.unwrap().contains(&target));
}

/// BEHAVIOR.md §1's cascade: the messages a deleted device still has
/// queued anywhere are never delivered from its deletion on; the sweep
/// deletes them; its marker can then be forgotten.
async fn deleted_senders_messages_are_hidden_then_swept(store: &dyn Store) {
    let (t, s, x) = (
        new_device(Uuid::now_v7(), 1, "ds-target"),
        new_device(Uuid::now_v7(), 1, "ds-sender"),
        new_device(Uuid::now_v7(), 1, "ds-other"),
    );
    let (target, sender, other, sender_user) = (t.device.id, s.device.id, x.device.id, s.device.user_id);
    for d in [t, s, x] {
        create_device(store, d).await;
    }
    let far = i64::MAX / 4;
    store
        .append(vec![
            message(target, sender, Uuid::new_v4(), far),
            message(target, other, Uuid::new_v4(), far),
            message(target, sender, Uuid::new_v4(), far),
        ])
        .await
        .unwrap();
    assert_eq!(store.fetch(target, None, 10, 0).await.unwrap().len(), 3);
    assert!(store.delete_device(sender_user, sender).await.unwrap().is_some());
    let left = store.fetch(target, None, 10, 0).await.unwrap();
    assert_eq!(left.iter().map(|m| m.sender_device).collect::<Vec<_>>(), vec![other]);
    assert_eq!(
        store
            .append(vec![message(target, sender, Uuid::new_v4(), far)])
            .await
            .unwrap(),
        vec![Appended::NoSuchSender]
    );
    assert_eq!(store.sweep_mailbox(target, 0, 100).await.unwrap(), 2);
    assert_eq!(store.forget_deleted_senders(i64::MAX).await.unwrap(), 1);
    let after = store.fetch(target, None, 10, 0).await.unwrap();
    assert_eq!(after.iter().map(|m| m.id).collect::<Vec<_>>(), vec![left[0].id]);
    assert_eq!(store.ack(target, vec![left[0].id]).await.unwrap(), 1);
    assert!(store.fetch(target, None, 10, 0).await.unwrap().is_empty());
}

/// Stores `answer` under (`device`, `key`) until `expires`, with no message.
async fn store_answer(store: &dyn Store, device: Uuid, key: Uuid, answer: &'static [u8], expires: i64) {
    let key = AnswerKey {
        device,
        key,
        now_secs: 0,
        expires_at_secs: expires,
    };
    let answer_of: AnswerOf = Box::new(move |_| Some(bytes::Bytes::from_static(answer)));
    let stored = store.append_and_answer(Vec::new(), key, answer_of).await.unwrap();
    assert!(matches!(stored, GuardedAppend::Appended { answer: Some(_), .. }));
}

/// A send stores its answer with its messages; a send with the same key
/// then queues nothing and gets that answer while it is unexpired; an
/// answer of `None` stores nothing.
async fn sends_store_their_answer_with_their_messages(store: &dyn Store) {
    let device = new_device(Uuid::now_v7(), 1, "guarded");
    let id = device.device.id;
    create_device(store, device).await;
    let key = Uuid::new_v4();
    let guard = |now_secs| AnswerKey {
        device: id,
        key,
        now_secs,
        expires_at_secs: 100,
    };
    let send = || vec![message(id, id, Uuid::new_v4(), i64::MAX / 4)];
    let count: AnswerOf = Box::new(|outcomes| Some(format!("{} stored", outcomes.len()).into_bytes().into()));
    let first = store.append_and_answer(send(), guard(10), count).await.unwrap();
    let GuardedAppend::Appended { outcomes, answer } = first else {
        panic!("{first:?}")
    };
    assert!(matches!(outcomes[..], [Appended::Stored(_)]));
    assert_eq!(answer.as_deref(), Some(&b"1 stored"[..]));
    let again: AnswerOf = Box::new(|_| panic!("a repeat makes no answer"));
    assert_eq!(
        store.append_and_answer(send(), guard(99), again).await.unwrap(),
        GuardedAppend::Answered(bytes::Bytes::from_static(b"1 stored"))
    );
    assert_eq!(store.fetch(id, None, 10, 0).await.unwrap().len(), 1, "nothing appended");
    let later: AnswerOf = Box::new(|_| None);
    let expired = store.append_and_answer(send(), guard(100), later).await.unwrap();
    assert!(
        matches!(expired, GuardedAppend::Appended { answer: None, .. }),
        "an expired answer does not count"
    );
    let other = AnswerKey {
        key: Uuid::new_v4(),
        ..guard(10)
    };
    let none: AnswerOf = Box::new(|_| None);
    assert!(matches!(
        store.append_and_answer(send(), other, none).await.unwrap(),
        GuardedAppend::Appended { answer: None, .. }
    ));
    assert_eq!(store.fetch(id, None, 10, 0).await.unwrap().len(), 3);
    assert_eq!(
        store.idempotent_response(id, other.key, 0).await.unwrap(),
        None,
        "None stores nothing"
    );
}

async fn idempotency_and_tickets(store: &dyn Store) {
    let (device, key) = (Uuid::now_v7(), Uuid::new_v4());
    assert_eq!(store.idempotent_response(device, key, 0).await.unwrap(), None);
    store_answer(store, device, key, b"answer", 100).await;
    assert_eq!(
        store.idempotent_response(device, key, 50).await.unwrap().as_deref(),
        Some(&b"answer"[..])
    );
    assert_eq!(
        store.idempotent_response(Uuid::now_v7(), key, 50).await.unwrap(),
        None,
        "scoped to the device"
    );
    assert_eq!(
        store.idempotent_response(device, key, 100).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.purge_idempotency(200, 10).await.unwrap(), 1);
    let ticket = Uuid::new_v4();
    let holder = TicketHolder {
        device_id: device,
        user_id: Uuid::now_v7(),
        generation: 3,
    };
    store.create_ticket(ticket, holder, 30).await.unwrap();
    assert_eq!(store.consume_ticket(ticket).await.unwrap(), Some(holder));
    assert_eq!(store.consume_ticket(ticket).await.unwrap(), None, "single use");
    let expired = Uuid::new_v4();
    store.create_ticket(expired, holder, 0).await.unwrap();
    assert_eq!(store.consume_ticket(expired).await.unwrap(), None);
}

async fn push_tokens_and_jobs(store: &dyn Store) {
    let target = new_device(Uuid::now_v7(), 1, "push-target");
    let device = target.device.id;
    create_device(store, target).await;
    assert!(!store.set_push_token(Uuid::now_v7(), "t".into()).await.unwrap());
    // Without a token, messages schedule nothing.
    store
        .append(vec![message(device, device, Uuid::new_v4(), i64::MAX / 4)])
        .await
        .unwrap();
    assert_eq!(store.pending_push(device).await.unwrap(), None);
    assert!(store.set_push_token(device, "first".into()).await.unwrap());
    assert!(store.set_push_token(device, " second ".into()).await.unwrap());
    assert_eq!(store.push_token(device).await.unwrap().as_deref(), Some(" second "));
    // Coalescing: the first message's due time holds for the next ones.
    let mut early = message(device, device, Uuid::new_v4(), i64::MAX / 4);
    early.wake_at_ms = Some(1_000);
    let mut late = message(device, device, Uuid::new_v4(), i64::MAX / 4);
    late.wake_at_ms = Some(9_000);
    store.append(vec![early]).await.unwrap();
    store.append(vec![late]).await.unwrap();
    assert_eq!(store.pending_push(device).await.unwrap(), Some(1_000));
    // An ack cancels it.
    let queued = store.fetch(device, None, 1, 0).await.unwrap();
    store.ack(device, vec![queued[0].id]).await.unwrap();
    assert_eq!(store.pending_push(device).await.unwrap(), None);
    // A lease hands a due job out once and makes it due again later.
    store.schedule_push(device, 2_000).await.unwrap();
    store.schedule_push(device, 5_000).await.unwrap();
    assert!(store.lease_pushes(1_999, 10, 60_000).await.unwrap().is_empty());
    let mut winners = 0;
    for _ in 0..10 {
        winners += store.lease_pushes(2_000, 10, 60_000).await.unwrap().len();
    }
    assert_eq!(winners, 1, "one of ten competing leases gets the job");
    assert_eq!(store.pending_push(device).await.unwrap(), Some(60_000));
    assert_eq!(
        store.lease_pushes(60_000, 10, 90_000).await.unwrap(),
        vec![(device, " second ".to_string())],
        "an unfinished lease is retried"
    );
    store.complete_push(device).await.unwrap();
    assert_eq!(store.pending_push(device).await.unwrap(), None);
    store.schedule_push(device, 3_000).await.unwrap();
    store.cancel_push(device).await.unwrap();
    assert_eq!(store.pending_push(device).await.unwrap(), None);
}

async fn dead_push_tokens_and_cascade(store: &dyn Store) {
    let (a, b, c) = (
        new_device(Uuid::now_v7(), 1, "dead-a"),
        new_device(Uuid::now_v7(), 1, "dead-b"),
        new_device(Uuid::now_v7(), 1, "dead-c"),
    );
    let (a_id, b_id, c_id, c_user) = (a.device.id, b.device.id, c.device.id, c.device.user_id);
    for d in [a, b, c] {
        create_device(store, d).await;
    }
    store.set_push_token(a_id, "shared".into()).await.unwrap();
    store.set_push_token(b_id, "shared".into()).await.unwrap();
    store.set_push_token(c_id, "own".into()).await.unwrap();
    // A job whose token is gone by the lease is removed without a push.
    store.schedule_push(a_id, 10).await.unwrap();
    assert_eq!(store.remove_push_tokens(vec!["shared".into()]).await.unwrap(), 2);
    assert_eq!(store.push_token(a_id).await.unwrap(), None);
    assert_eq!(store.push_token(b_id).await.unwrap(), None);
    assert_eq!(store.push_token(c_id).await.unwrap().as_deref(), Some("own"));
    assert!(store.lease_pushes(10, 10, 100).await.unwrap().is_empty());
    assert_eq!(store.pending_push(a_id).await.unwrap(), None);
    // A replaced token is not removed with its old string.
    store.set_push_token(b_id, "old".into()).await.unwrap();
    store.set_push_token(b_id, "new".into()).await.unwrap();
    assert_eq!(store.remove_push_tokens(vec!["old".into()]).await.unwrap(), 0);
    assert_eq!(store.push_token(b_id).await.unwrap().as_deref(), Some("new"));
    // Deleting a device removes its token and job.
    store.schedule_push(c_id, 10).await.unwrap();
    assert!(store.delete_device(c_user, c_id).await.unwrap().is_some());
    assert_eq!(store.push_token(c_id).await.unwrap(), None);
    assert_eq!(store.pending_push(c_id).await.unwrap(), None);
    assert!(store.lease_pushes(10, 10, 100).await.unwrap().is_empty());
}

/// TEST-CASES K115 at store level: expired attachments are listed oldest
/// first, bounded, and deleting one forgets it.
async fn attachments_expire_oldest_first(store: &dyn Store) {
    let (old, older, fresh) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    store.insert_attachment(old, 100).await.unwrap();
    store.insert_attachment(older, 50).await.unwrap();
    store.insert_attachment(fresh, 1_000).await.unwrap();
    assert_eq!(store.attachment_expiry(old).await.unwrap(), Some(100));
    assert_eq!(store.attachment_expiry(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.expired_attachments(500, 10).await.unwrap(), vec![older, old]);
    assert_eq!(store.expired_attachments(500, 1).await.unwrap(), vec![older]);
    assert!(
        store.expired_attachments(100, 10).await.unwrap() == vec![older],
        "expiry is exclusive"
    );
    store.delete_attachment(older).await.unwrap();
    store.delete_attachment(Uuid::new_v4()).await.unwrap();
    assert_eq!(store.attachment_expiry(older).await.unwrap(), None);
    assert_eq!(store.expired_attachments(500, 10).await.unwrap(), vec![old]);
}

fn reserved_version(reservation: Reservation) -> i32 {
    match reservation {
        Reservation::Reserved { version, .. } => version,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// §10.1-10.2 (TEST-CASES M120-M123, M129): versions start at 1 and rise by
/// one per commit; a wrong expected version is refused even while an upload
/// runs; a fresh upload blocks a second; a commit lands only while its
/// upload holds the slot; a released slot is free again.
async fn backup_versions_lock_optimistically(store: &dyn Store) {
    let device = Uuid::now_v7();
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(store.backup(device).await.unwrap(), None);
    assert_eq!(
        reserved_version(store.reserve_backup(device, 0, a, 1_000, 0).await.unwrap()),
        1
    );
    let second = store.reserve_backup(device, 0, b, 1_001, 0).await.unwrap();
    assert_eq!(second, Reservation::InProgress, "M129: a fresh upload holds the slot");
    let mismatch = store.reserve_backup(device, 3, b, 1_001, 0).await.unwrap();
    assert_eq!(mismatch, Reservation::VersionMismatch, "412 comes before 409");
    let row = store.backup(device).await.unwrap().unwrap();
    assert_eq!((row.current_version, row.pending.map(|p| p.version)), (0, Some(1)));
    assert_eq!(store.commit_backup(device, b).await.unwrap(), BackupCommit::Lost);
    assert_eq!(
        store.commit_backup(device, a).await.unwrap(),
        BackupCommit::Committed(None)
    );
    assert_eq!(
        store.commit_backup(device, a).await.unwrap(),
        BackupCommit::Lost,
        "once"
    );
    assert_eq!(
        reserved_version(store.reserve_backup(device, 1, b, 2_000, 0).await.unwrap()),
        2
    );
    assert!(!store.release_backup(device, c).await.unwrap(), "not c's slot");
    assert!(store.release_backup(device, b).await.unwrap());
    assert_eq!(
        reserved_version(store.reserve_backup(device, 1, c, 3_000, 0).await.unwrap()),
        2
    );
    let committed = store.commit_backup(device, c).await.unwrap();
    assert_eq!(committed, BackupCommit::Committed(Some((1, a))), "v1 is to be deleted");
    let row = store.backup(device).await.unwrap().unwrap();
    assert_eq!(
        row,
        BackupRow {
            current_version: 2,
            current_token: Some(c),
            pending: None
        }
    );
    let failed = store.reserve_backup(Uuid::now_v7(), 5, a, 0, 0).await.unwrap();
    assert_eq!(failed, Reservation::VersionMismatch);
}

/// §10.2 takeover and §12 (TEST-CASES M130, M139): an upload older than the
/// threshold is listed for the clean-up and can be taken over; the upload
/// that lost its slot cannot commit; resetting leaves the committed version.
async fn stale_backup_uploads_are_found_and_reset(store: &dyn Store) {
    let device = Uuid::now_v7();
    let (first, stale, takeover) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    store.reserve_backup(device, 0, first, 0, -1).await.unwrap();
    store.commit_backup(device, first).await.unwrap();
    store.reserve_backup(device, 1, stale, 10_000, -1).await.unwrap();
    let pending = PendingBackup {
        version: 2,
        token: stale,
        started_at_ms: 10_000,
    };
    assert_eq!(store.stale_backups(130_000, 10).await.unwrap(), vec![(device, pending)]);
    assert!(
        store.stale_backups(9_999, 10).await.unwrap().is_empty(),
        "not stale yet"
    );
    let taken = store
        .reserve_backup(device, 1, takeover, 130_000, 70_000)
        .await
        .unwrap();
    assert_eq!(
        taken,
        Reservation::Reserved {
            version: 2,
            replaced: Some(pending)
        }
    );
    assert_eq!(store.commit_backup(device, stale).await.unwrap(), BackupCommit::Lost);
    assert!(
        store.stale_backups(129_999, 10).await.unwrap().is_empty(),
        "fresh again"
    );
    assert!(
        store.release_backup(device, takeover).await.unwrap(),
        "the clean-up's reset"
    );
    let row = store.backup(device).await.unwrap().unwrap();
    assert_eq!(
        row,
        BackupRow {
            current_version: 1,
            current_token: Some(first),
            pending: None
        }
    );
    assert!(store.stale_backups(i64::MAX, 10).await.unwrap().is_empty());
}

/// §1 cascade: deleting a device deletes its backup row.
async fn backup_row_goes_with_its_device(store: &dyn Store) {
    let owner = Uuid::now_v7();
    let new = new_device(owner, 1, "t");
    let device = new.device.id;
    create_device(store, new).await;
    store.reserve_backup(device, 0, Uuid::new_v4(), 0, -1).await.unwrap();
    assert!(store.backup(device).await.unwrap().is_some());
    assert!(store.delete_device(owner, device).await.unwrap().is_some());
    assert_eq!(store.backup(device).await.unwrap(), None);
    assert!(store.stale_backups(i64::MAX, 10).await.unwrap().is_empty());
}

/// A device of `owner` created (with its account) and its id.
async fn device_of(store: &dyn Store, owner: Uuid, token: &str) -> Uuid {
    let new = new_device(owner, 1, token);
    let id = new.device.id;
    create_device(store, new).await;
    id
}

/// Whether `store` logged `floor` for `user`.
async fn logged(store: &dyn Store, user: Uuid, floor: TokenFloor) -> bool {
    let log = store.revocations_since(i64::MIN).await.unwrap();
    log.iter().any(|r| r.revoked == Revoked::Account(user, floor))
}

/// The account and every row it owns go in one call, the messages its
/// devices sent are hidden, and the deletion is pending until finished.
async fn account_deletion_is_one_decision(store: &dyn Store) {
    let (owner, friend) = (account(store).await, account(store).await);
    let (a, b) = (
        device_of(store, owner, "del-a").await,
        device_of(store, owner, "del-b").await,
    );
    let inbox = device_of(store, friend, "del-friend").await;
    store.reserve_backup(a, 0, Uuid::new_v4(), 0, -1).await.unwrap();
    assert!(store.set_push_token(b, "push-b".into()).await.unwrap());
    let far = i64::MAX / 4;
    store
        .append(vec![
            message(inbox, a, Uuid::new_v4(), far),
            message(b, inbox, Uuid::new_v4(), far),
        ])
        .await
        .unwrap();
    assert!(store.pending_push(b).await.unwrap().is_some());
    assert_eq!(store.delete_account(owner, 1).await.unwrap(), None, "stale generation");
    assert_eq!(store.delete_account(Uuid::now_v7(), 0).await.unwrap(), None);
    let deletion = store.delete_account(owner, 0).await.unwrap().expect("deleted");
    let mut devices = deletion.devices.clone();
    devices.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!((deletion.user_id, devices), (owner, expected));
    assert_eq!(store.user(owner).await.unwrap(), None);
    assert!(store.devices_of(owner).await.unwrap().is_empty());
    for device in [a, b] {
        assert_eq!(store.device(device).await.unwrap(), None);
        assert_eq!(store.take_bundle(device).await.unwrap(), None);
        assert!(store.fetch(device, None, 10, 0).await.unwrap().is_empty());
        assert_eq!(store.backup(device).await.unwrap(), None);
        assert_eq!(store.push_token(device).await.unwrap(), None);
        assert_eq!(store.pending_push(device).await.unwrap(), None);
    }
    assert!(store.fetch(inbox, None, 10, 0).await.unwrap().is_empty(), "hidden");
    for token in [format!("owner-{owner}"), "del-a".into(), "del-b".into()] {
        let rotation = store
            .rotate_refresh(hash_text(&token), hash_text("x"), 0, 100)
            .await
            .unwrap();
        assert_eq!(rotation, Rotation::Unknown, "{token}");
    }
    let late = store.create_device(new_device(owner, 2, "late"), 10).await;
    assert!(matches!(late, Err(StoreError::AccountChanged)), "{late:?}");
    let login = store
        .insert_refresh(refresh("late-login", owner, None, Uuid::new_v4(), far))
        .await;
    assert!(matches!(login, Err(StoreError::AccountChanged)), "{login:?}");
    assert!(logged(store, owner, TokenFloor::Deleted).await);
    assert_eq!(store.delete_account(owner, 0).await.unwrap(), None, "once");
    assert_eq!(
        store.pending_account_deletions(i64::MAX, 10).await.unwrap(),
        vec![deletion.clone()]
    );
    assert!(store
        .pending_account_deletions(deletion.at_ms, 10)
        .await
        .unwrap()
        .is_empty());
    store.finish_account_deletion(owner).await.unwrap();
    store.finish_account_deletion(owner).await.unwrap();
    assert!(store.pending_account_deletions(i64::MAX, 10).await.unwrap().is_empty());
}

/// A deleted account's name can be registered again, as a new account.
async fn account_deletion_leaves_the_name_free(store: &dyn Store) {
    let first = user("reused");
    store
        .create_user(first.clone(), refresh("r-1", first.id, None, Uuid::new_v4(), 10))
        .await
        .unwrap();
    assert!(store.delete_account(first.id, 0).await.unwrap().is_some());
    assert_eq!(store.user_by_name("reused").await.unwrap(), None);
    let second = user("reused");
    store
        .create_user(second.clone(), refresh("r-2", second.id, None, Uuid::new_v4(), 10))
        .await
        .unwrap();
    assert_eq!(store.user_by_name("reused").await.unwrap(), Some(second));
}

/// A password change is conditional on the generation, raises it, revokes
/// every refresh token of the account, and stores the caller's new one at
/// the new generation; nothing of the old generation is accepted after.
async fn password_change_moves_the_generation(store: &dyn Store) {
    let owner = account(store).await;
    let device = device_of(store, owner, "pw-device").await;
    let change = |expected| PasswordChange {
        user_id: owner,
        expected_generation: expected,
        password_hash: "$argon2id$new".into(),
        refresh: refresh("pw-fresh", owner, Some(device), Uuid::new_v4(), i64::MAX / 4),
    };
    assert_eq!(store.change_password(change(1)).await.unwrap(), None);
    let changed = store.change_password(change(0)).await.unwrap().expect("changed");
    assert_eq!((changed.generation, changed.devices.clone()), (1, vec![device]));
    let stored = store.user(owner).await.unwrap().expect("still there");
    assert_eq!(
        (stored.password_hash.as_str(), stored.token_generation),
        ("$argon2id$new", 1)
    );
    assert_eq!(
        store.change_password(change(0)).await.unwrap(),
        None,
        "the generation moved"
    );
    for old in [format!("owner-{owner}"), "pw-device".into()] {
        let rotation = store
            .rotate_refresh(hash_text(&old), hash_text("x"), 0, 100)
            .await
            .unwrap();
        assert_eq!(rotation, Rotation::Unknown, "{old}");
    }
    let Rotation::Rotated(spent) = store
        .rotate_refresh(hash_text("pw-fresh"), hash_text("pw-next"), 0, 100)
        .await
        .unwrap()
    else {
        panic!("the new token rotates");
    };
    assert_eq!((spent.generation, spent.device_id), (1, Some(device)));
    let stale = store
        .insert_refresh(refresh("pw-stale", owner, None, Uuid::new_v4(), 100))
        .await;
    assert!(matches!(stale, Err(StoreError::AccountChanged)), "{stale:?}");
    let current = RefreshRecord {
        generation: 1,
        ..refresh("pw-current", owner, None, Uuid::new_v4(), 100)
    };
    store.insert_refresh(current).await.unwrap();
    let stale_device = store.create_device(new_device(owner, 3, "pw-old-gen"), 10).await;
    assert!(
        matches!(stale_device, Err(StoreError::AccountChanged)),
        "{stale_device:?}"
    );
    let mut fresh_device = new_device(owner, 3, "pw-new-gen");
    fresh_device.refresh.generation = 1;
    store.create_device(fresh_device, 10).await.unwrap();
    assert!(logged(store, owner, TokenFloor::Generation(1)).await);
}

/// The log answers "since T" (inclusive) in time order and forgets what
/// the purge removes.
async fn revocations_are_logged_and_purged(store: &dyn Store) {
    let owner = account(store).await;
    let hash = |n: u32| PasswordChange {
        user_id: owner,
        expected_generation: n,
        password_hash: format!("$argon2id${n}"),
        refresh: refresh(&format!("log-{n}"), owner, None, Uuid::new_v4(), 100),
    };
    let first = store.change_password(hash(0)).await.unwrap().expect("first");
    let second = store.change_password(hash(1)).await.unwrap().expect("second");
    let all: Vec<_> = store
        .revocations_since(first.at_ms)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.revoked.subject() == owner)
        .collect();
    // Two revocations of one account in one millisecond may share a row:
    // the later (stricter) one is what must be kept.
    let floors: Vec<_> = all.iter().map(|r| (r.revoked, r.at_ms)).collect();
    let generation = |n| Revoked::Account(owner, TokenFloor::Generation(n));
    assert_eq!(floors.last(), Some(&(generation(2), second.at_ms)), "{floors:?}");
    assert!(floors.len() == 2 || first.at_ms == second.at_ms, "{floors:?}");
    assert!(floors.len() < 2 || floors[0] == (generation(1), first.at_ms));
    assert!(store
        .revocations_since(second.at_ms + 1)
        .await
        .unwrap()
        .iter()
        .all(|r| r.revoked.subject() != owner));
    assert!(store.purge_revocations(second.at_ms + 1, 10).await.unwrap() >= floors.len());
    assert!(!logged(store, owner, TokenFloor::Generation(1)).await);
    assert_eq!(store.purge_revocations(second.at_ms + 1, 10).await.unwrap(), 0);
}

/// Presents refresh token `text` (its next one is `next`).
async fn present(store: &dyn Store, text: &str, next: &str) -> Rotation {
    store
        .rotate_refresh(hash_text(text), hash_text(next), 1, i64::MAX / 4)
        .await
        .unwrap()
}

/// A device deletion raises the account's user-scope generation and logs
/// its two revocations; the device's refresh tokens and the account's
/// user-scoped ones from before are refused from then on, while another
/// device's and a user-scoped one issued after it rotate; logins see the
/// new generation.
async fn device_deletion_revokes_its_credentials(store: &dyn Store) {
    let owner = account(store).await;
    let (stolen, kept) = (
        device_of(store, owner, "rev-stolen").await,
        device_of(store, owner, "rev-kept").await,
    );
    assert_eq!(store.delete_device(Uuid::now_v7(), stolen).await.unwrap(), None);
    let deletion = store.delete_device(owner, stolen).await.unwrap().expect("deleted");
    assert_eq!(deletion.user_scope_generation, 1);
    assert_eq!(store.delete_device(owner, stolen).await.unwrap(), None, "once");
    let account = store.user(owner).await.unwrap().expect("account");
    assert_eq!((account.token_generation, account.user_scope_generation), (0, 1));
    let log = store.revocations_since(deletion.at_ms).await.unwrap();
    for revocation in deletion.revocations(owner, stolen) {
        assert!(log.contains(&revocation), "{revocation:?} in {log:?}");
    }
    assert_eq!(present(store, "rev-stolen", "rev-stolen-2").await, Rotation::Unknown);
    assert_eq!(
        present(store, &format!("owner-{owner}"), "rev-owner-2").await,
        Rotation::Unknown,
        "a user-scoped token from before the deletion"
    );
    assert!(matches!(
        present(store, "rev-kept", "rev-kept-2").await,
        Rotation::Rotated(_)
    ));
    let after = RefreshRecord {
        user_scope_generation: 1,
        ..refresh("rev-after", owner, None, Uuid::new_v4(), i64::MAX / 4)
    };
    store.insert_refresh(after).await.unwrap();
    let Rotation::Rotated(spent) = present(store, "rev-after", "rev-after-2").await else {
        panic!("a user-scoped token from after the deletion rotates");
    };
    assert_eq!(spent.user_scope_generation, 1);
    assert!(matches!(
        present(store, "rev-after-2", "rev-after-3").await,
        Rotation::Rotated(_)
    ));
    let second = store.delete_device(owner, kept).await.unwrap().expect("deleted");
    assert_eq!(second.user_scope_generation, 2);
    assert_eq!(present(store, "rev-after-3", "rev-after-4").await, Rotation::Unknown);
}

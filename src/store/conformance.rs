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
    ("refresh_rotation_and_reuse", |s| {
        Box::pin(refresh_rotation_and_reuse(s))
    }),
    ("refresh_expiry_and_purge", |s| Box::pin(refresh_expiry_and_purge(s))),
];

fn user(name: &str) -> UserRecord {
    UserRecord {
        id: Uuid::now_v7(),
        username: name.into(),
        password_hash: "$argon2id$x".into(),
        created_at_micros: 1,
    }
}

fn refresh(text: &str, user_id: Uuid, device_id: Option<Uuid>, family: Uuid, expires: i64) -> RefreshRecord {
    RefreshRecord {
        hash: hash_text(text),
        user_id,
        device_id,
        family,
        expires_at_secs: expires,
    }
}

fn new_device(user_id: Uuid, created: i64, token: &str) -> NewDevice {
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

async fn devices_round_trip_and_cascade(store: &dyn Store) {
    let owner = Uuid::now_v7();
    let (first, second) = (new_device(owner, 20, "t1"), new_device(owner, 10, "t2"));
    store.create_device(first.clone(), 10).await.unwrap();
    store.create_device(second.clone(), 10).await.unwrap();
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
    assert!(!store.delete_device(stranger, first.device.id).await.unwrap());
    assert!(store.delete_device(owner, first.device.id).await.unwrap());
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
    let owner = Uuid::now_v7();
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
    let (owner, family) = (Uuid::now_v7(), Uuid::new_v4());
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
    let owner = Uuid::now_v7();
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

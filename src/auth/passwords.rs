//! Password hashing: argon2id with the reference server's parameters
//! (m = 19456 KiB, t = 2, p = 1, 32-byte output, 16-byte salt; PHC strings),
//! always on the [`WorkerPool`], never on a shard. Logins of unknown users
//! verify against a dummy hash so that they cost the same time as a wrong
//! password.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

use crate::limits;
use crate::offload::oneshot::Canceled;
use crate::offload::workers::WorkerPool;

/// Hashing failed: a broken stored hash or the pool went away.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The stored hash is not a PHC string we can read.
    #[error("stored password hash is unreadable: {0}")]
    BadHash(argon2::password_hash::Error),
    /// Hashing itself failed.
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// The worker pool is shutting down.
    #[error(transparent)]
    Canceled(#[from] Canceled),
}

/// The reference server's parameters: m = 19456 KiB, t = 2, p = 1, 32 bytes.
fn params() -> Params {
    Params::new(19_456, 2, 1, Some(32)).unwrap_or_default()
}

thread_local! {
    /// The argon2 memory of this worker, allocated once and reused: a fresh
    /// 19 MiB allocation per hash costs page faults and, with glibc, leaves
    /// the freed blocks resident in malloc arenas (hundreds of MiB of RSS
    /// after a burst of registrations).
    static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs argon2 (`params`, `algorithm`, `version`) into `out` on this
/// thread's reusable memory.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = params.block_count();
    let hasher = Argon2::new(algorithm, version, params);
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        hasher.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })
}

fn hash_now(password: &[u8]) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| PasswordError::Hash(argon2::password_hash::Error::Crypto))?;
    let params = params();
    let mut out = [0u8; 32];
    compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params.clone(),
        password,
        &salt,
        &mut out,
    )
    .map_err(|e| PasswordError::Hash(e.into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
    Ok(format!(
        "$argon2id$v=19$m={m},t={t},p={p}${}${}",
        salt.as_str(),
        STANDARD_NO_PAD.encode(out)
    ))
}

fn verify_now(password: &[u8], phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(PasswordError::BadHash)?;
    let params = Params::try_from(&parsed).map_err(PasswordError::BadHash)?;
    if params.m_cost() > limits::PASSWORD_HASH_MEMORY_KIB_MAX {
        return Err(PasswordError::BadHash(argon2::password_hash::Error::ParamValueInvalid(
            argon2::password_hash::errors::InvalidValue::TooLong,
        )));
    }
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(PasswordError::BadHash)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| PasswordError::BadHash(e.into()))?,
        None => Version::V0x13,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::BadHash(argon2::password_hash::Error::PhcStringField));
    };
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(PasswordError::BadHash)?;
    let mut out = vec![0u8; expected.len()];
    compute(algorithm, version, params, password, salt, &mut out).map_err(|e| PasswordError::BadHash(e.into()))?;
    // Output's equality is constant-time.
    Ok(Output::new(&out).map_err(PasswordError::BadHash)? == expected)
}

/// A hash of a random password, computed once, for unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 24];
        let _ = getrandom::fill(&mut secret);
        hash_now(&secret).unwrap_or_default()
    })
}

/// Hashes and verifies passwords on a worker pool.
#[derive(Clone)]
pub struct Passwords {
    pool: WorkerPool,
}

impl Passwords {
    /// Uses `pool` for every hash. Computes the dummy hash first (on a
    /// short-lived thread, so its memory is freed), so the first login of an
    /// unknown user is not faster than the rest.
    pub fn new(pool: WorkerPool) -> Self {
        let _ = std::thread::spawn(|| dummy_hash().len()).join();
        Self { pool }
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: Arc<str>) -> Result<String, PasswordError> {
        self.pool.run(move || hash_now(password.as_bytes())).await?
    }

    /// Checks `password` against `stored`; with `None` (unknown user) it
    /// checks against the dummy hash and answers `false`.
    pub async fn verify(&self, password: Arc<str>, stored: Option<String>) -> Result<bool, PasswordError> {
        self.pool
            .run(move || match stored {
                Some(phc) => verify_now(password.as_bytes(), &phc),
                None => verify_now(password.as_bytes(), dummy_hash()).map(|_| false),
            })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_the_right_password_only() {
        let phc = hash_now(b"correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_now(b"correct horse battery", &phc).unwrap());
        assert!(!verify_now(b"wrong horse battery", &phc).unwrap());
        assert!(verify_now(b"x", "not a phc string").is_err());
        // A hash made by the argon2 crate's own PHC code verifies too.
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify_now(b"pw", &theirs).unwrap());
        assert!(!verify_now(b"pX", &theirs).unwrap());
    }
}

//! Who is calling: access tokens ([`tokens`]) and their secret
//! ([`signing_key`]), password hashing off the shards ([`passwords`]),
//! refresh tokens and their families ([`refresh`]), and per-client rate
//! limits ([`rate_limit`]).
//! Nothing here logs a token or a password.

pub mod passwords;
pub mod rate_limit;
pub mod refresh;
pub mod signing_key;
pub mod tokens;

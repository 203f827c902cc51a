//! The access-token secret (no built-in one): the embedded store's key file, made on the first
//! start and reused after a restart; the secret rules and the refusals at start; rotation with
//! previous secrets and the `kid` header.

use std::os::unix::fs::PermissionsExt;

use sha2::{Digest, Sha256};

use crate::common::jwt;
use crate::common::server::TestStore;
use crate::common::{now_secs, TestResult, TestServer};

/// Two valid secrets for the rotation test (neither is the harness's).
const OLD_SECRET: &str = "4a7f0c2e9b1d6583a0e4c7f2b9d16e3a8c5f0b2d7e9a14c6f3b8d0e2a5c7f91b";
const NEW_SECRET: &str = "c81e5a3f7d0b92e46a1c8f3d5b7e09a2c4f6d8b1e3a5c7f90b2d4e6a8c1f3e5d";

/// The `kid` the server gives tokens of `secret`: the first 8 bytes of its SHA-256, in hex.
fn kid(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts a server on the embedded store with `extra` (which must make it refuse to start);
/// the start-up error with the server's log tail.
fn refused(extra: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    match TestServer::start_on(TestStore::Embedded, extra) {
        Ok(_) => Err(format!("the server started with {extra:?}").into()),
        Err(e) => Ok(e.to_string()),
    }
}

#[test]
fn first_start_makes_a_key_file_that_a_restart_reuses() -> TestResult {
    // Goal: without a secret, the embedded store's first start writes 64 hex characters from
    // the OS's random source to <data-dir>/jwt-secret with mode 0600, logs where (never the
    // key), signs with it (the token's kid is the key's), and a restart reuses it: a token from
    // before the restart still works. Method: start with no --auth-jwt-secret, read the file,
    // register, restart, call GET /v1/users/me with the old token.
    let mut server = TestServer::start_without_secret(&[])?;
    let path = server.data_dir().join("jwt-secret");
    let meta = std::fs::metadata(&path)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "mode of {}", path.display());
    let text = std::fs::read_to_string(&path)?;
    let key = text.strip_suffix('\n').unwrap_or(&text).to_string();
    assert_eq!(key.len(), 64, "{} holds {} bytes", path.display(), text.len());
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "not hex");
    assert_ne!(key, crate::common::server::JWT_SECRET);

    let client = server.client();
    let alice = client.register_ok("alice")?;
    assert_eq!(jwt::header(&alice.token)?["kid"], kid(&key));
    assert_eq!(client.me(&alice.token)?.status, 200);
    let log = server.log_tail(100_000);
    assert!(
        log.contains(&path.display().to_string()),
        "the log names the key file: {log}"
    );
    assert!(!log.contains(&key), "the key leaked into the log");

    server.restart()?;
    assert_eq!(std::fs::read_to_string(&path)?, text, "the key file changed");
    let client = server.client();
    client.me(&alice.token)?.expect_json(200)?;
    // A token without kid (from before kids) signed with the key works too.
    client
        .me(&jwt::token(&key, &alice.user_id, None, now_secs() + 300))?
        .expect_json(200)?;
    assert!(!server.log_tail(100_000).contains(&key), "the key leaked into the log");
    Ok(())
}

#[test]
fn scylla_store_without_a_secret_refuses_to_start() -> TestResult {
    // Goal: with --store scylla no key file is made (every node must share the secret): the
    // start stops, before connecting, with an error that says how to make one. Method: no
    // secret and a contact point where nothing listens.
    let error = refused_without_secret(&["--store", "scylla", "--scylla-nodes", "127.0.0.1:1"])?;
    assert!(
        error.contains("--store scylla needs --auth-jwt-secret") && error.contains("openssl rand -hex 32"),
        "{error}"
    );
    assert!(error.contains("exit status: 1"), "{error}");
    Ok(())
}

/// As `refused`, without the harness's secret.
fn refused_without_secret(extra: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    match TestServer::start_without_secret(extra) {
        Ok(_) => Err(format!("the server started with {extra:?} and no secret").into()),
        Err(e) => Ok(e.to_string()),
    }
}

#[test]
fn weak_secrets_refuse_to_start() -> TestResult {
    // Goal: a secret shorter than 32 bytes, one repeated character, a known placeholder (in any
    // case), or an instruction left in a deployment file stops the start with an error naming
    // `openssl rand -hex 32` and not the value; previous secrets obey the same rules. Method:
    // one start per value; a 32-byte phrase as the control starts.
    let short = "a-secret-of-exactly-31-bytes-xy";
    assert_eq!(short.len(), 31);
    let repeated = "a".repeat(64);
    // Each placeholder in another case than the list's, with the reason the error must give.
    let placeholder = "is a well-known placeholder";
    let cases = [
        (short, "is 31 bytes long, shorter than 32"),
        (repeated.as_str(), "repeats one character"),
        ("REPLACE: openssl rand -hex 32", "is an instruction"),
        ("Change_Me_In_Production", placeholder),
        ("CHANGE-ME", placeholder),
        ("ChangeMe", placeholder),
        ("Secret", placeholder),
        ("PASSWORD", placeholder),
        ("Jwt-Secret", placeholder),
    ];
    for (value, reason) in cases {
        let error = refused(&["--auth-jwt-secret", value])?;
        assert!(
            error.contains(&format!("--auth-jwt-secret (OBSCURA_AUTH_JWT_SECRET) {reason}"))
                && error.contains("openssl rand -hex 32"),
            "{value:?}: {error}"
        );
        if value.len() > 12 {
            assert!(!error.contains(value), "{value:?} is in the output: {error}");
        }
    }
    let error = refused(&["--auth-jwt-previous-secrets", &format!("{OLD_SECRET},{short}")])?;
    assert!(
        error.contains("entry 2 of --auth-jwt-previous-secrets") && error.contains("openssl rand -hex 32"),
        "{error}"
    );
    TestServer::start_on(
        TestStore::Embedded,
        &["--auth-jwt-secret", "a-passphrase-of-exactly-32-bytes"],
    )?;
    Ok(())
}

#[test]
fn bad_key_file_refuses_to_start() -> TestResult {
    // Goal: a key file that exists but is not 64 hex characters, or that other users may read,
    // stops the start with an error naming the file (never a new key over it). Method: a server
    // makes its key file; stop it, spoil the file, start again.
    let mut server = TestServer::start_without_secret(&[])?;
    let path = server.data_dir().join("jwt-secret");
    server.stop()?;
    std::fs::write(&path, "0123456789abcdef\n")?;
    let error = match server.respawn() {
        Ok(()) => return Err("the server started with a malformed key file".into()),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains(&path.display().to_string()) && error.contains("does not hold 64 hex characters"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&path)?,
        "0123456789abcdef\n",
        "the file was replaced"
    );
    std::fs::write(&path, format!("{OLD_SECRET}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    let error = match server.respawn() {
        Ok(()) => return Err("the server started with a key file others may read".into()),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("chmod 600"), "{error}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    server.respawn()?;
    let alice = server.client().register_ok("alice")?;
    assert_eq!(jwt::header(&alice.token)?["kid"], kid(OLD_SECRET));
    Ok(())
}

#[test]
fn previous_secrets_keep_tokens_until_dropped() -> TestResult {
    // Goal: rotation without logging anyone out: after the current secret becomes a previous
    // one, its tokens (with its kid, or without kid as the binary before kids issued them) are
    // still accepted and new tokens carry the new kid; once it is no longer listed they are
    // refused while the new key's tokens work. Method: one server restarted with secret OLD,
    // then NEW + previous OLD, then NEW alone.
    let mut server = TestServer::start_with(&["--auth-jwt-secret", OLD_SECRET])?;
    let client = server.client();
    let alice = client.register_ok("alice")?;
    assert_eq!(jwt::header(&alice.token)?["kid"], kid(OLD_SECRET));
    let old_without_kid = jwt::token(OLD_SECRET, &alice.user_id, None, now_secs() + 600);
    let new_without_kid = jwt::token(NEW_SECRET, &alice.user_id, None, now_secs() + 600);
    client.me(&old_without_kid)?.expect_json(200)?;
    client.me(&new_without_kid)?.expect_error_text(401, "Unauthorized")?;

    server.restart_with(&[
        "--auth-jwt-secret",
        NEW_SECRET,
        "--auth-jwt-previous-secrets",
        OLD_SECRET,
    ])?;
    let client = server.client();
    client.me(&alice.token)?.expect_json(200)?;
    client.me(&old_without_kid)?.expect_json(200)?;
    client.me(&new_without_kid)?.expect_json(200)?;
    let fresh = client.login_ok("alice", None)?;
    assert_eq!(jwt::header(&fresh.token)?["kid"], kid(NEW_SECRET));
    client.me(&fresh.token)?.expect_json(200)?;

    server.restart_with(&["--auth-jwt-secret", NEW_SECRET])?;
    let client = server.client();
    client.me(&alice.token)?.expect_error_text(401, "Unauthorized")?;
    client.me(&old_without_kid)?.expect_error_text(401, "Unauthorized")?;
    client.me(&fresh.token)?.expect_json(200)?;
    client.me(&new_without_kid)?.expect_json(200)?;
    Ok(())
}

//! Blob storage for the attachment and backup tests: a server on the local filesystem or on S3
//! (a `moto_server` on a loopback port, started per test with its own bucket), and a look into
//! that storage (object keys, multipart uploads in progress) that does not go through the
//! server. `on_both_backends!` turns a test function taking a `Backend` into one test per
//! backend. Without moto (`build.rs` looks for it) the S3 tests are reported ignored, never
//! passed; CI installs it (`.ci/run`) and fails if any test was ignored.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::data;
use super::server::TestServer;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The bucket every S3 test server uses (in its own moto process).
const BUCKET: &str = "obscura-test";
/// How long moto may take to accept connections.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a test server keeps its blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

/// A `moto_server` process on a free loopback port; killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Res<Self> {
        // Take a free port from the kernel, release it, and hand it to moto.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // `python3 -m` finds moto wherever pip put it (no PATH or pyenv shim needed).
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start `python3 -m moto.server` ({e}); install it: pip install 'moto[server]'")
            })?;
        let moto = Moto { child, port };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > MOTO_START_TIMEOUT {
                return Err(format!("moto_server did not listen on {port} within {MOTO_START_TIMEOUT:?}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let created = ureq::put(&moto.url(BUCKET)).send_empty()?;
        if !created.status().is_success() {
            return Err(format!("creating the bucket answered {}", created.status()).into());
        }
        Ok(moto)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// A GET on moto (unsigned: moto does not check signatures), as text.
    fn get(&self, path: &str) -> Res<String> {
        Ok(ureq::get(&self.url(path)).call()?.body_mut().read_to_string()?)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test server with its blob storage.
pub struct BlobServer {
    pub server: TestServer,
    pub backend: Backend,
    // Declared last: stopped after the server.
    moto: Option<Moto>,
}

impl std::ops::Deref for BlobServer {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl BlobServer {
    /// A data-plane server (`data::server_with`) on `backend`, with `extra` flags.
    pub fn start(backend: Backend, extra: &[&str]) -> Res<Self> {
        let moto = match backend {
            Backend::Local => None,
            Backend::S3 => Some(Moto::start()?),
        };
        let endpoint = moto.as_ref().map(|m| format!("http://127.0.0.1:{}", m.port));
        let mut flags: Vec<&str> = Vec::new();
        if let Some(endpoint) = &endpoint {
            flags.extend([
                "--storage-backend",
                "s3",
                "--storage-endpoint",
                endpoint,
                "--storage-bucket",
                BUCKET,
                "--storage-access-key",
                "test",
                "--storage-secret-key",
                "test",
            ]);
        }
        flags.extend_from_slice(extra);
        let server = data::server_with(&flags)?;
        Ok(BlobServer { server, backend, moto })
    }

    /// The keys of the stored objects under `prefix`, sorted; on the local backend also any
    /// file left there (a multipart staging file counts as left behind).
    pub fn keys(&self, prefix: &str) -> Res<Vec<String>> {
        let mut keys = match &self.moto {
            None => {
                let root = self.server.data_dir().join("blobs");
                let mut found = Vec::new();
                if root.exists() {
                    walk(&root, &root, &mut found)?;
                }
                found.retain(|k| k.starts_with(prefix));
                found
            }
            Some(moto) => {
                let listing = moto.get(&format!("{BUCKET}?list-type=2&prefix={prefix}"))?;
                tags(&listing, "Key")
            }
        };
        keys.sort();
        Ok(keys)
    }

    /// Multipart uploads begun and neither completed nor aborted (S3; none on the local
    /// backend, whose staging files `keys` shows).
    pub fn open_uploads(&self) -> Res<usize> {
        match &self.moto {
            None => Ok(0),
            Some(moto) => Ok(tags(&moto.get(&format!("{BUCKET}?uploads"))?, "UploadId").len()),
        }
    }

    /// Asserts that nothing is stored under `prefix` and no upload is open, waiting up to 5 s
    /// for clean-ups that run in the background.
    pub fn wait_nothing_left(&self, prefix: &str) -> Res<()> {
        self.wait_keys(prefix, |keys| keys.is_empty())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.open_uploads()? > 0 {
            if Instant::now() > deadline {
                return Err(format!("{} multipart uploads left open", self.open_uploads()?).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Waits up to 5 s until the keys under `prefix` satisfy `ok`; returns them.
    pub fn wait_keys(&self, prefix: &str, ok: impl Fn(&[String]) -> bool) -> Res<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let keys = self.keys(prefix)?;
            if ok(&keys) {
                return Ok(keys);
            }
            if Instant::now() > deadline {
                return Err(format!("objects under {prefix:?} stayed {keys:?}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to 5 s until an upload under `prefix` has begun in storage (a staging file on
    /// the local backend, an open multipart upload on S3): the server has taken the request.
    pub fn wait_upload_begun(&self, prefix: &str) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let begun = match self.backend {
                Backend::Local => self.keys(prefix)?.iter().any(|k| k.contains('#')),
                Backend::S3 => self.open_uploads()? > 0,
            };
            if begun {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no upload under {prefix:?} began").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Deletes the object `key` behind the server's back.
    pub fn remove(&self, key: &str) -> Res<()> {
        match &self.moto {
            None => std::fs::remove_file(self.server.data_dir().join("blobs").join(key))?,
            Some(moto) => {
                ureq::delete(&moto.url(&format!("{BUCKET}/{key}"))).call()?;
            }
        }
        Ok(())
    }
}

/// Relative paths of the files under `dir`.
fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) -> Res<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, found)?;
        } else {
            found.push(path.strip_prefix(root)?.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// The texts of every `<tag>…</tag>` in `xml`.
fn tags(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(text, _)| text.to_string()))
        .collect()
}

/// One `#[test]` per backend for each named function `fn name(backend: Backend) -> TestResult`:
/// `name::local` and `name::s3`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::common::blobs::Backend;
                use $crate::common::TestResult;

                #[test]
                fn local() -> TestResult {
                    super::$name(Backend::Local)
                }

                #[test]
                #[cfg_attr(not(moto), ignore = "no moto: python3 -m pip install 'moto[server]', then touch build.rs")]
                fn s3() -> TestResult {
                    super::$name(Backend::S3)
                }
            }
        )*
    };
}

/// The head of a POST to `path` with a bearer `token`, `Content-Length: length` and `extra`
/// headers, for raw uploads whose body the test sends at its own pace.
pub fn upload_head(path: &str, token: &str, length: usize, extra: &[(&str, &str)]) -> Vec<u8> {
    let auth = format!("Bearer {token}");
    let length = length.to_string();
    let mut headers = vec![("Authorization", auth.as_str()), ("Content-Length", length.as_str())];
    headers.extend_from_slice(extra);
    super::raw::request_bytes("POST", path, &headers, None)
}

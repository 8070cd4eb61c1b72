//! The token a request must carry, and where it comes from.
//!
//! In Lambda the token is the execution environment's `AWS_SESSION_TOKEN` (or `AWS_CONTAINER_AUTHORIZATION_TOKEN`
//! under SnapStart), fixed for the life of the environment. In a container the application and the sidecar share it
//! another way, as the AWS Secrets Manager Agent does: `AWS_TOKEN` (or the others) may name a file, `file:///path`, on
//! a volume both containers mount. Such a file is re-read when it changes (checked every second, and at once when a
//! request carries a token that does not match), so a rotated token works without a restart and the old one stops
//! working within a second.
//!
//! Tokens are compared as SHA-256 digests in constant time: equal-length inputs make the comparison's time say
//! nothing about the token's length or content. A connection remembers the token it presented once that was accepted
//! ([`Accepted`]), so its next requests compare bytes instead of hashing again: a Lambda session token is over a
//! kilobyte, 18 SHA-256 blocks on every hit otherwise.
//!
//! A token file is read on tokio's blocking pool, never on an async worker, one read at a time, and waited for at most
//! [`READ_TIMEOUT`]: a slow or hung file system delays only requests whose token does not match, never `/ping`. Only
//! a regular file of at most [`MAX_FILE_BYTES`] is read, opened with `O_NONBLOCK` so that a FIFO cannot block the
//! open. While a token file cannot be used, requests without another accepted token are refused with a 401 that says
//! why, and the reason is logged once, when it first appears (and once more when the file is usable again).

use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

/// How often a token file is checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// A request with a wrong token re-reads the file at most this often, so wrong tokens cannot make us read it in a loop.
const REREAD_AT_MOST_EVERY: Duration = Duration::from_millis(100);
/// The largest token file read: tokens are a few hundred bytes (a Lambda session token is about 1 KiB).
pub const MAX_FILE_BYTES: u64 = 8 * 1024;
/// How long a request waits for a token file to be read.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Where one accepted token comes from. Its `Debug` never shows a token.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The variable's value itself.
    Value {
        /// The variable it came from.
        variable: String,
        /// The token.
        token: String,
    },
    /// The contents of a file the variable names (`file:///path`), trimmed.
    File {
        /// The variable that named it.
        variable: String,
        /// The file.
        path: PathBuf,
    },
}

impl TokenSource {
    /// The source a variable's value describes: `file:///path` is a file, anything else the token itself.
    pub fn from_value(variable: &str, value: String) -> Self {
        match value.strip_prefix("file://") {
            Some(path) => Self::File {
                variable: variable.to_owned(),
                path: PathBuf::from(path),
            },
            None => Self::Value {
                variable: variable.to_owned(),
                token: value,
            },
        }
    }

    /// The variable the token was configured with.
    pub fn variable(&self) -> &str {
        match self {
            Self::Value { variable, .. } | Self::File { variable, .. } => variable,
        }
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value { variable, .. } => write!(f, "{variable} (value redacted)"),
            Self::File { variable, path } => write!(f, "{variable} (file {})", path.display()),
        }
    }
}

/// What a file looked like when last read, to notice a change without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// Why a token file gives no token. Messages name no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// A FIFO, a directory, a device: anything but a regular file is refused.
    #[error("is not a regular file")]
    NotRegular,
    /// Larger than any token.
    #[error("is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    /// Empty, or only white space.
    #[error("is empty")]
    Empty,
    /// Not valid UTF-8.
    #[error("is not UTF-8 text")]
    NotText,
    /// Cannot be opened or read.
    #[error("cannot be read: {0}")]
    Io(String),
    /// The read did not finish within [`READ_TIMEOUT`].
    #[error("could not be read within {} ms", READ_TIMEOUT.as_millis())]
    TimedOut,
}

/// The token a file holds, trimmed. Blocking: call it off the async workers. Opened with `O_NONBLOCK`, so a FIFO
/// (or a device) is refused by its type instead of blocking the open until a writer comes.
pub fn read_file(path: &Path) -> Result<String, FileError> {
    let io = |e: std::io::Error| FileError::Io(e.kind().to_string());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular);
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    // The length may grow after the check: read one byte more than allowed to notice.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    token_of(bytes)
}

/// The token a file's content holds: UTF-8 text of at most [`MAX_FILE_BYTES`], trimmed, not empty.
pub fn token_of(bytes: Vec<u8>) -> Result<String, FileError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    let text = String::from_utf8(bytes).map_err(|_| FileError::NotText)?;
    match text.trim() {
        "" => Err(FileError::Empty),
        token => Ok(token.to_owned()),
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// What the last read of the files found. Locked only to copy in or out, never across I/O.
#[derive(Debug, Default)]
struct FileState {
    /// When files were last read.
    last_read: Option<Instant>,
    /// What each source's file looked like then (`None` for values and missing files).
    stamps: Vec<Option<Stamp>>,
    /// Why each source's file gives no token, if it does not; a change is logged.
    problems: Vec<Option<FileError>>,
}

/// The token one connection presented and had accepted, and the [`Tokens`] generation it was accepted in. A request's
/// token is compared with it in constant time when their lengths are equal (a keep-alive connection may be shared by
/// a client pool; the most its timing tells is the length of a token sent on that connection). Wiped when the
/// connection ends.
#[derive(Default)]
pub struct Accepted(Mutex<Option<(u64, Zeroizing<Vec<u8>>)>>);

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Accepted(..)")
    }
}

impl Accepted {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Zeroizing<Vec<u8>>)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn matches(&self, generation: u64, given: &[u8]) -> bool {
        match &*self.lock() {
            Some((g, token)) if *g == generation && token.len() == given.len() => {
                bool::from(token.as_slice().ct_eq(given))
            }
            _ => false,
        }
    }

    fn remember(&self, generation: u64, given: &[u8]) {
        *self.lock() = Some((generation, Zeroizing::new(given.to_vec())));
    }
}

/// The accepted tokens, as digests, kept current with their sources.
pub struct Tokens {
    sources: Vec<TokenSource>,
    digests: RwLock<Vec<[u8; 32]>>,
    /// Bumped after every change of `digests`: what a connection's [`Accepted`] was accepted against.
    generation: AtomicU64,
    files: Mutex<FileState>,
    /// Whether a read of the files is under way (on the blocking pool): at most one at a time, so a hung file system
    /// holds one blocking thread, not one per request.
    reading: AtomicBool,
    /// Wakes the requests waiting for that read.
    read_done: tokio::sync::Notify,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The accepted tokens, with the values in place and no file read yet (see [`Tokens::load`]).
    pub fn new(sources: Vec<TokenSource>) -> Arc<Self> {
        let digests = sources
            .iter()
            .filter_map(|s| match s {
                TokenSource::Value { token, .. } => Some(digest(token.as_bytes())),
                TokenSource::File { .. } => None,
            })
            .collect();
        Arc::new(Self {
            files: Mutex::new(FileState {
                last_read: None,
                stamps: vec![None; sources.len()],
                problems: vec![None; sources.len()],
            }),
            sources,
            digests: RwLock::new(digests),
            generation: AtomicU64::new(0),
            reading: AtomicBool::new(false),
            read_done: tokio::sync::Notify::new(),
        })
    }

    /// The accepted tokens, with every file read once.
    pub async fn load(sources: Vec<TokenSource>) -> Arc<Self> {
        let tokens = Self::new(sources);
        if tokens.has_files() {
            tokens.refresh(true).await;
        }
        tokens
    }

    /// Whether `given` is an accepted token. A mismatch while a token lives in a file looks at the file first (and
    /// reads it when it changed, or at most every 100 ms), so a client that picked up a rotated token before our
    /// watcher did is not refused.
    pub async fn accepts(self: &Arc<Self>, given: &[u8]) -> bool {
        let given = digest(given);
        if self.matches(&given) {
            return true;
        }
        if self.has_files() {
            let force = self.reread_allowed();
            if self.refresh(force).await {
                return self.matches(&given);
            }
        }
        false
    }

    /// [`Tokens::accepts`] for a request on the connection whose accepted token `seen` remembers: the same token
    /// as the one accepted there, while the accepted tokens have not changed since, is accepted without hashing it
    /// again; a token accepted otherwise is remembered.
    pub async fn accepts_on(self: &Arc<Self>, seen: &Accepted, given: &[u8]) -> bool {
        // Read before the check: a change during it leaves `seen` one generation behind, so checked again next time.
        let generation = self.generation.load(Ordering::Acquire);
        if seen.matches(generation, given) {
            return true;
        }
        let accepted = self.accepts(given).await;
        if accepted {
            seen.remember(generation, given);
        }
        accepted
    }

    /// Why a token file gives no token right now, if one does not: the reason a refused request is told.
    pub fn file_problem(&self) -> Option<String> {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        self.sources
            .iter()
            .zip(&files.problems)
            .find_map(|(source, problem)| match (source, problem) {
                (TokenSource::File { variable, .. }, Some(problem)) => {
                    Some(format!("the token file that {variable} names {problem}"))
                }
                _ => None,
            })
    }

    /// Whether any token comes from a file.
    pub fn has_files(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s, TokenSource::File { .. }))
    }

    /// Whether no token at all could be read: every request but `/ping` will be refused.
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// Checks the token files every second until `shutdown`, and re-reads them when they change.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.has_files() {
            return;
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(WATCH_EVERY) => {}
            }
            if self.refresh(false).await {
                tracing::info!(
                    "the token file changed; the new token is accepted and the old one no longer"
                );
            }
        }
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Vec<[u8; 32]>> {
        self.digests.read().unwrap_or_else(|p| p.into_inner())
    }

    fn matches(&self, given: &[u8; 32]) -> bool {
        // Every accepted value is compared, without stopping early, so timing says nothing about which one matched.
        let matched = self
            .current()
            .iter()
            .fold(subtle::Choice::from(0), |acc, t| acc | t.ct_eq(given));
        bool::from(matched)
    }

    fn reread_allowed(&self) -> bool {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files
            .last_read
            .is_none_or(|last| last.elapsed() >= REREAD_AT_MOST_EVERY)
    }

    /// Looks at the files on the blocking pool and reads them when they changed (or always, with `force`); waits for
    /// that at most [`READ_TIMEOUT`]. When a read is already under way, waits for it instead of starting another.
    /// Returns whether the accepted set may have changed.
    async fn refresh(self: &Arc<Self>, force: bool) -> bool {
        let done = self.read_done.notified();
        tokio::pin!(done);
        // Registered before the check below, so a read that ends in between still wakes us.
        done.as_mut().enable();
        if self.reading.swap(true, Ordering::AcqRel) {
            return tokio::time::timeout(READ_TIMEOUT, done).await.is_ok();
        }
        let this = Arc::clone(self);
        let job = tokio::task::spawn_blocking(move || {
            let _done = ReadDone(&this);
            this.read_files(force)
        });
        match tokio::time::timeout(READ_TIMEOUT, job).await {
            Ok(Ok(changed)) => changed,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading the token file failed");
                false
            }
            Err(_) => {
                // The read goes on, and publishes what it finds when it ends; until then, say why we refuse.
                self.note_problems(
                    self.sources
                        .iter()
                        .map(|s| {
                            matches!(s, TokenSource::File { .. }).then_some(FileError::TimedOut)
                        })
                        .collect(),
                );
                false
            }
        }
    }

    /// Blocking: stats every file, reads the changed ones (or all, with `force`), and publishes the digests. Returns
    /// whether the accepted set changed.
    fn read_files(&self, force: bool) -> bool {
        let stamps: Vec<Option<Stamp>> = self
            .sources
            .iter()
            .map(|s| match s {
                TokenSource::File { path, .. } => stamp(path),
                TokenSource::Value { .. } => None,
            })
            .collect();
        {
            let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            if !force && files.last_read.is_some() && files.stamps == stamps {
                return false;
            }
        }
        let mut digests = Vec::with_capacity(self.sources.len());
        let mut problems = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            match source {
                TokenSource::Value { token, .. } => {
                    digests.push(digest(token.as_bytes()));
                    problems.push(None);
                }
                TokenSource::File { path, .. } => match read_file(path) {
                    Ok(token) => {
                        digests.push(digest(token.as_bytes()));
                        problems.push(None);
                    }
                    Err(e) => problems.push(Some(e)),
                },
            }
        }
        {
            let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            files.last_read = Some(Instant::now());
            files.stamps = stamps;
        }
        self.note_problems(problems);
        let mut current = self.digests.write().unwrap_or_else(|p| p.into_inner());
        let changed = *current != digests;
        *current = digests;
        if changed {
            // After the digests: a connection that sees the new generation is checked against the new set.
            self.generation.fetch_add(1, Ordering::Release);
        }
        changed
    }

    /// Records each file's problem, logging only the ones that changed: a refused file is logged once, not per request.
    fn note_problems(&self, problems: Vec<Option<FileError>>) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        for ((source, old), new) in self.sources.iter().zip(&mut files.problems).zip(problems) {
            let TokenSource::File { variable, path } = source else {
                continue;
            };
            if *old == new {
                continue;
            }
            match &new {
                Some(problem) => tracing::warn!(
                    variable = %variable,
                    file = %path.display(),
                    problem = %problem,
                    "the token file cannot be used; requests without another accepted token are refused (401)"
                ),
                None => {
                    tracing::info!(variable = %variable, file = %path.display(), "the token file is usable again")
                }
            }
            *old = new;
        }
    }
}

/// Ends a read of the files, however it ends: lets the next one start and wakes those waiting for this one.
struct ReadDone<'a>(&'a Tokens);

impl Drop for ReadDone<'_> {
    fn drop(&mut self) {
        self.0.reading.store(false, Ordering::Release);
        self.0.read_done.notify_waiters();
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_and_files_are_accepted_and_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-the-file\n").expect("write");
        let tokens = Tokens::load(vec![
            TokenSource::from_value("AWS_SESSION_TOKEN", "session-secret".into()),
            TokenSource::from_value("AWS_TOKEN", format!("file://{}", file.display())),
        ])
        .await;
        assert!(tokens.accepts(b"session-secret").await);
        assert!(
            tokens.accepts(b"from-the-file").await,
            "trimmed, as the Agent reads it"
        );
        assert!(!tokens.accepts(b"from-the-file\n").await);
        assert!(!tokens.accepts(b"session-secre").await);
        assert!(!tokens.accepts(b"").await);
        let shown = format!("{tokens:?}");
        assert!(
            !shown.contains("session-secret") && !shown.contains("from-the-file"),
            "{shown}"
        );
    }

    /// Tokens read from a file in a new directory (kept alive by the returned handle) holding `token`.
    async fn token_file(token: &str) -> (tempfile::TempDir, PathBuf, Arc<Tokens>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, token).expect("write");
        let tokens = Tokens::load(vec![TokenSource::File {
            variable: "AWS_TOKEN".into(),
            path: file.clone(),
        }])
        .await;
        (dir, file, tokens)
    }

    #[tokio::test]
    async fn a_rotated_file_is_picked_up_on_the_next_request_that_needs_it() {
        let (_dir, file, tokens) = token_file("old").await;
        assert!(tokens.accepts(b"old").await);
        std::fs::write(&file, "newer").expect("rotate");
        // At once: the file's size changed, so the mismatch re-reads it.
        assert!(tokens.accepts(b"newer").await);
        assert!(!tokens.accepts(b"old").await, "the old token stops working");
    }

    #[tokio::test]
    async fn a_connection_s_accepted_token_is_remembered_until_the_accepted_tokens_change() {
        let (_dir, file, tokens) = token_file("old").await;
        let seen = Accepted::default();
        let generation = tokens.generation.load(Ordering::Acquire);
        assert!(tokens.accepts_on(&seen, b"old").await);
        assert!(
            seen.matches(generation, b"old"),
            "remembered, in the current generation"
        );
        assert!(!tokens.accepts_on(&seen, b"olc").await);
        assert!(!tokens.accepts_on(&seen, b"ol").await);
        assert!(!tokens.accepts_on(&seen, b"").await);
        assert!(tokens.accepts_on(&seen, b"old").await);
        assert!(
            !format!("{seen:?}").contains("old"),
            "never shown: {seen:?}"
        );
        // Rotated, and picked up by the watcher (not by this connection): the connection's old token is refused.
        std::fs::write(&file, "newer").expect("rotate");
        assert!(tokens.refresh(true).await, "the accepted set changed");
        assert!(!tokens.accepts_on(&seen, b"old").await);
        assert!(tokens.accepts_on(&seen, b"newer").await);
        assert!(seen.matches(generation + 1, b"newer"));
        // Another connection knows nothing of this one's token.
        assert!(!Accepted::default().matches(generation + 1, b"newer"));
    }

    #[tokio::test]
    async fn a_missing_file_refuses_everything_until_it_appears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("later");
        let tokens = Tokens::load(vec![TokenSource::File {
            variable: "AWS_TOKEN".into(),
            path: file.clone(),
        }])
        .await;
        assert!(tokens.is_empty());
        assert!(!tokens.accepts(b"anything").await);
        assert!(tokens
            .file_problem()
            .is_some_and(|p| p.contains("AWS_TOKEN")));
        std::fs::write(&file, "arrived").expect("write");
        assert!(tokens.accepts(b"arrived").await);
        assert_eq!(tokens.file_problem(), None);
    }

    /// A FIFO is refused by its type without waiting for a writer (before, opening it blocked for good), as are a
    /// directory and a file larger than any token.
    #[tokio::test]
    async fn only_a_small_regular_file_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        assert_eq!(read_file(&fifo), Err(FileError::NotRegular));
        assert_eq!(read_file(dir.path()), Err(FileError::NotRegular));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; MAX_FILE_BYTES as usize + 1]).expect("write");
        assert_eq!(read_file(&big), Err(FileError::TooLarge));
        let fits = dir.path().join("fits");
        std::fs::write(&fits, vec![b'a'; MAX_FILE_BYTES as usize]).expect("write");
        assert_eq!(
            read_file(&fits).map(|t| t.len()),
            Ok(MAX_FILE_BYTES as usize)
        );

        let tokens = Tokens::load(vec![TokenSource::File {
            variable: "AWS_TOKEN".into(),
            path: fifo,
        }])
        .await;
        assert!(!tokens.accepts(b"anything").await);
        let problem = tokens.file_problem().expect("a reason");
        assert!(problem.contains("not a regular file"), "{problem}");
    }
}

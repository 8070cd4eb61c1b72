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
//! nothing about the token's length or content.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// How often a token file is checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// A request with a wrong token re-reads the file at most this often, so wrong tokens cannot make us read it in a loop.
const REREAD_AT_MOST_EVERY: Duration = Duration::from_millis(100);

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

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// The accepted tokens, as digests, kept current with their sources.
pub struct Tokens {
    sources: Vec<TokenSource>,
    digests: RwLock<Vec<[u8; 32]>>,
    /// When files were last read, and what they looked like.
    files: Mutex<(Option<Instant>, Vec<Option<Stamp>>)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Reads every source once.
    pub fn new(sources: Vec<TokenSource>) -> Arc<Self> {
        let tokens = Arc::new(Self {
            files: Mutex::new((None, vec![None; sources.len()])),
            sources,
            digests: RwLock::new(Vec::new()),
        });
        tokens.reload();
        tokens
    }

    /// Whether `given` is an accepted token. A mismatch while a token lives in a file re-reads the file first (at
    /// most every 100 ms), so a client that picked up a rotated token before our watcher did is not refused.
    pub fn accepts(&self, given: &[u8]) -> bool {
        let given = digest(given);
        if self.matches(&given) {
            return true;
        }
        // A client may have picked up a rotated token before the watcher did: look at the file now (a stat), and
        // read it again when it changed, or at most every 100 ms in case a change kept its size and time.
        if self.has_files() && (self.files_changed() || self.reread_allowed()) && self.reload() {
            return self.matches(&given);
        }
        false
    }

    /// Whether a token file looks different from when it was last read.
    fn files_changed(&self) -> bool {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        self.sources.iter().zip(&files.1).any(|(s, last)| match s {
            TokenSource::File { path, .. } => stamp(path) != *last,
            TokenSource::Value { .. } => false,
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
            if self.files_changed() && self.reload() {
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
            .0
            .is_none_or(|last| last.elapsed() >= REREAD_AT_MOST_EVERY)
    }

    /// Reads every source; returns whether the accepted set changed.
    fn reload(&self) -> bool {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let mut digests = Vec::with_capacity(self.sources.len());
        for (i, source) in self.sources.iter().enumerate() {
            match source {
                TokenSource::Value { token, .. } => digests.push(digest(token.as_bytes())),
                TokenSource::File { variable, path } => {
                    files.1[i] = stamp(path);
                    match std::fs::read_to_string(path) {
                        Ok(text) if !text.trim().is_empty() => {
                            digests.push(digest(text.trim().as_bytes()))
                        }
                        Ok(_) => tracing::warn!(
                            variable = %variable,
                            file = %path.display(),
                            "the token file is empty; requests are refused until it holds a token"
                        ),
                        Err(e) => tracing::warn!(
                            variable = %variable,
                            file = %path.display(),
                            error = %e,
                            "cannot read the token file; requests are refused until it can be read"
                        ),
                    }
                }
            }
        }
        files.0 = Some(Instant::now());
        let mut current = self.digests.write().unwrap_or_else(|p| p.into_inner());
        let changed = *current != digests;
        *current = digests;
        changed
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_files_are_accepted_and_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-the-file\n").expect("write");
        let tokens = Tokens::new(vec![
            TokenSource::from_value("AWS_SESSION_TOKEN", "session-secret".into()),
            TokenSource::from_value("AWS_TOKEN", format!("file://{}", file.display())),
        ]);
        assert!(tokens.accepts(b"session-secret"));
        assert!(
            tokens.accepts(b"from-the-file"),
            "trimmed, as the Agent reads it"
        );
        assert!(!tokens.accepts(b"from-the-file\n"));
        assert!(!tokens.accepts(b"session-secre"));
        assert!(!tokens.accepts(b""));
        let shown = format!("{tokens:?}");
        assert!(
            !shown.contains("session-secret") && !shown.contains("from-the-file"),
            "{shown}"
        );
    }

    #[test]
    fn a_rotated_file_is_picked_up_on_the_next_request_that_needs_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "old").expect("write");
        let tokens = Tokens::new(vec![TokenSource::File {
            variable: "AWS_TOKEN".into(),
            path: file.clone(),
        }]);
        assert!(tokens.accepts(b"old"));
        std::fs::write(&file, "newer").expect("rotate");
        // At once: the file's size changed, so the mismatch re-reads it.
        assert!(tokens.accepts(b"newer"));
        assert!(!tokens.accepts(b"old"), "the old token stops working");
    }

    #[test]
    fn a_missing_file_refuses_everything_until_it_appears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("later");
        let tokens = Tokens::new(vec![TokenSource::File {
            variable: "AWS_TOKEN".into(),
            path: file.clone(),
        }]);
        assert!(tokens.is_empty());
        assert!(!tokens.accepts(b"anything"));
        std::fs::write(&file, "arrived").expect("write");
        tokens.files.lock().expect("lock").0 = Some(Instant::now() - REREAD_AT_MOST_EVERY);
        assert!(tokens.accepts(b"arrived"));
    }
}

//! Upstream credentials custody holds for the application (`routes[].credentials`):
//! read from a mounted file at startup, re-read when the file changes, and set on
//! the forwarded request in place of whatever the client sent. Values are marked
//! sensitive and never logged.

use crate::config::Credentials;
use crate::error::StartError;
use crate::watch::Stamp;
use http::{HeaderName, HeaderValue};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often credential files are checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// One route's credential.
#[derive(Debug)]
pub(crate) struct Credential {
    pub(crate) header: HeaderName,
    prefix: String,
    path: PathBuf,
    /// The value and the stamp of the file it was read from.
    state: RwLock<(HeaderValue, Option<Stamp>)>,
}

impl Credential {
    /// Reads the file; fails if it is missing, empty or not a valid header value.
    pub(crate) fn load(config: &Credentials) -> Result<Arc<Self>, StartError> {
        let (value, modified) = read(&config.value_file, &config.prefix).map_err(|message| {
            StartError::Internal(format!(
                "credentials {}: {message}",
                config.value_file.display()
            ))
        })?;
        Ok(Arc::new(Self {
            header: config.header.clone(),
            prefix: config.prefix.clone(),
            path: config.value_file.clone(),
            state: RwLock::new((value, modified)),
        }))
    }

    /// The current value.
    pub(crate) fn value(&self) -> HeaderValue {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }

    /// Re-reads the file if it changed; a bad new file keeps the old value.
    fn reload(&self) {
        let stamp = Stamp::of(&self.path).ok();
        if stamp == self.state.read().unwrap_or_else(PoisonError::into_inner).1 {
            return;
        }
        match read(&self.path, &self.prefix) {
            Ok(new) => {
                *self.state.write().unwrap_or_else(PoisonError::into_inner) = new;
                tracing::info!(file = %self.path.display(), "credential reloaded");
            }
            Err(message) => {
                tracing::warn!(file = %self.path.display(), %message, "credential file unusable; keeping the previous value");
            }
        }
    }
}

fn read(path: &Path, prefix: &str) -> Result<(HeaderValue, Option<Stamp>), String> {
    let stamp = Stamp::of(path).ok();
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err("the file is empty".into());
    }
    let mut value = HeaderValue::from_str(&format!("{prefix}{secret}"))
        .map_err(|_| "the value is not a valid header value".to_owned())?;
    value.set_sensitive(true);
    Ok((value, stamp))
}

/// Re-reads changed credential files every [`RELOAD_INTERVAL`], off the runtime.
pub(crate) fn spawn_reloader(credentials: Vec<Arc<Credential>>) {
    if credentials.is_empty() {
        return;
    }
    crate::watch::poll(RELOAD_INTERVAL, CancellationToken::new(), move || {
        credentials.iter().for_each(|c| c.reload());
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn a_bad_new_file_keeps_the_old_value_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").expect("write");
        let credential = Credential::load(&Credentials {
            header: http::header::AUTHORIZATION,
            value_file: path.clone(),
            prefix: "Bearer ".into(),
        })
        .expect("load");
        assert_eq!(credential.value(), "Bearer first");
        assert!(credential.value().is_sensitive());
        // Distinct modification times even on coarse-grained filesystems.
        let touch = |text: &str, secs: u64| {
            std::fs::write(&path, text).expect("write");
            let file = std::fs::File::options()
                .append(true)
                .open(&path)
                .expect("open");
            file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
                .expect("mtime");
        };
        touch("   \n", 1_000);
        credential.reload();
        assert_eq!(credential.value(), "Bearer first", "empty file ignored");
        touch("bad\nvalue", 2_000);
        credential.reload();
        assert_eq!(
            credential.value(),
            "Bearer first",
            "invalid header value ignored"
        );
        touch("second", 3_000);
        credential.reload();
        assert_eq!(credential.value(), "Bearer second");
        std::fs::remove_file(&path).expect("remove");
        credential.reload();
        assert_eq!(
            credential.value(),
            "Bearer second",
            "a missing file keeps the value"
        );
    }
}

//! One way to notice that a mounted file changed, for every file custody rereads
//! while it runs (the policy, route credentials, the webhook's serving
//! certificate): its [`Stamp`] — device, inode, size and modification time to the
//! nanosecond, following symlinks, so a Kubernetes ConfigMap or Secret update (an
//! atomic `..data` symlink swap) always counts — compared on a fixed interval by
//! [`poll`]. Reading and parsing a changed file is the caller's; it runs on the
//! blocking pool, off the request path.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What identifies one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl Stamp {
    /// The stamp of the file `path` names (symlinks followed).
    pub fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

/// Calls `check` on the blocking pool every `interval` (the first time one interval
/// from now) until it returns `false` or `stop` is cancelled. `check` compares
/// stamps and rereads what changed.
pub fn poll(
    interval: Duration,
    stop: CancellationToken,
    check: impl Fn() -> bool + Send + Sync + 'static,
) {
    let check = Arc::new(check);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.cancelled() => return,
            }
            let check = check.clone();
            match tokio::task::spawn_blocking(move || check()).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_or_a_symlink_swap_changes_the_stamp_and_nothing_else_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let link = dir.path().join("link");
        std::fs::write(&a, "one").expect("write");
        std::fs::write(&b, "one").expect("write");
        std::os::unix::fs::symlink(&a, &link).expect("symlink");
        let first = Stamp::of(&link).expect("stamp");
        assert_eq!(Stamp::of(&link).expect("stamp"), first, "unchanged");
        // The same bytes behind another inode (a Secret update): changed.
        let tmp = dir.path().join("tmp");
        std::os::unix::fs::symlink(&b, &tmp).expect("symlink");
        std::fs::rename(&tmp, &link).expect("swap");
        let swapped = Stamp::of(&link).expect("stamp");
        assert_ne!(swapped, first);
        // A longer rewrite in place: changed.
        std::fs::write(&b, "one more").expect("write");
        assert_ne!(Stamp::of(&link).expect("stamp"), swapped);
        assert!(Stamp::of(&dir.path().join("missing")).is_err());
    }

    #[tokio::test]
    async fn poll_stops_when_told_or_when_the_check_says_so() {
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = count.clone();
        poll(
            Duration::from_millis(5),
            CancellationToken::new(),
            move || seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2,
        );
        // Three checks (the third says stop), then no more.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while count.load(std::sync::atomic::Ordering::SeqCst) < 3 {
            assert!(tokio::time::Instant::now() < deadline, "three checks");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
        let stop = CancellationToken::new();
        let ran = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let r = ran.clone();
        poll(Duration::from_millis(5), stop.clone(), move || {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            true
        });
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}

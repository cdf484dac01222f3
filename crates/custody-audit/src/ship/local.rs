//! The local directory sink: each file appears atomically and is never overwritten.
//!
//! A file is written under a hidden temporary name (`.<name>.<pid>.<n>.tmp`) in the
//! destination directory, fsync'd, then hard-linked to its final name — `link(2)`
//! fails if the name exists, so an existing file is never replaced — and the
//! temporary name is removed. The directory is fsync'd, and so is the parent of
//! every directory created on the way. On file systems without hard links the
//! file is renamed into place after checking the name is free (safe with one writer
//! per name, which deterministic names give).
//!
//! Everything here blocks: call it from `spawn_blocking`.

use super::UploadOutcome;
use super::error::{BoxError, Failure};
use crate::writer::WriteError;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A local directory sink.
#[derive(Debug, Clone)]
pub(super) struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub(super) fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Stores `bytes` as `<root>/<key>` unless a file of that name exists. `key` has
    /// been validated (relative, no `.`/`..`/hidden segments).
    pub(super) fn put(&self, key: &str, bytes: &[u8]) -> Result<UploadOutcome, Failure> {
        let dest = self.root.join(key);
        let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
            return Err(Failure::Permanent {
                reason: "the key names no file",
                source: format!("{}", dest.display()).into(),
            });
        };
        ensure_dir(dir).map_err(|e| classify(dir, e))?;
        if let Some(existing) = size_of(&dest).map_err(|e| classify(&dest, e))? {
            return compare(&dest, existing, bytes);
        }
        let tmp = dir.join(format!(
            ".{}.{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let guard = TmpFile(&tmp);
        write_synced(&tmp, bytes).map_err(|e| classify(&tmp, e))?;
        match fs::hard_link(&tmp, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let existing = size_of(&dest).map_err(|e| classify(&dest, e))?;
                return compare(&dest, existing.unwrap_or(0), bytes);
            }
            // No hard links here (EPERM / EOPNOTSUPP): rename after checking.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::Unsupported
                ) =>
            {
                if let Some(existing) = size_of(&dest).map_err(|e| classify(&dest, e))? {
                    return compare(&dest, existing, bytes);
                }
                fs::rename(&tmp, &dest).map_err(|e| classify(&dest, e))?;
            }
            Err(e) => return Err(classify(&dest, e)),
        }
        drop(guard);
        sync_dir(dir).map_err(|e| classify(dir, e))?;
        Ok(UploadOutcome::Created)
    }

    /// Keys of the files under `<root>/<prefix>` (a `/`-separated directory prefix,
    /// possibly empty), sorted; hidden and temporary files are left out.
    /// The bytes stored under `key`.
    pub(super) fn get(&self, key: &str) -> Result<Vec<u8>, BoxError> {
        let path = self.root.join(key);
        fs::read(&path).map_err(|e| io_err(&path, e))
    }

    /// Removes `<root>/<key>`; a file that is not there is not an error.
    pub(super) fn delete(&self, key: &str) -> Result<(), BoxError> {
        let path = self.root.join(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir).map_err(|e| io_err(dir, e))?;
                }
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    pub(super) fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(prefix)
        };
        let mut keys = Vec::new();
        let mut stack = vec![(start, prefix.to_owned())];
        while let Some((dir, key_prefix)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| io_err(&dir, e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let key = if key_prefix.is_empty() {
                    name.to_owned()
                } else {
                    format!("{key_prefix}/{name}")
                };
                let file_type = entry.file_type().map_err(|e| io_err(&entry.path(), e))?;
                if file_type.is_dir() {
                    stack.push((entry.path(), key));
                } else if file_type.is_file() {
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// Removes the temporary file when dropped (after linking, or on any failure).
struct TmpFile<'a>(&'a Path);

impl Drop for TmpFile<'_> {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(self.0)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %self.0.display(), error = %e, "removing temporary audit file");
        }
    }
}

/// A file is already stored under the name: the same bytes (an earlier attempt
/// landed) or a conflict (a size alone could be forged).
fn compare(path: &Path, existing: u64, bytes: &[u8]) -> Result<UploadOutcome, Failure> {
    if existing == bytes.len() as u64 && fs::read(path).map_err(|e| classify(path, e))? == bytes {
        Ok(UploadOutcome::AlreadyPresent)
    } else {
        Err(Failure::Conflict { existing })
    }
}

fn size_of(path: &Path) -> io::Result<Option<u64>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Creates `dir` and any missing parents, fsyncing the parent of each one created so
/// the new entries survive a crash.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d);
        cursor = d.parent();
    }
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn io_err(path: &Path, source: io::Error) -> BoxError {
    Box::new(WriteError::Io {
        path: path.to_owned(),
        source,
    })
}

fn classify(path: &Path, e: io::Error) -> Failure {
    let reason = match e.kind() {
        ErrorKind::PermissionDenied => "the directory is not writable",
        ErrorKind::ReadOnlyFilesystem => "the file system is read-only",
        ErrorKind::NotADirectory | ErrorKind::IsADirectory => "a path component has the wrong type",
        // Full disk, I/O errors, ...: may clear up.
        _ => return Failure::Transient(io_err(path, e)),
    };
    Failure::Permanent {
        reason,
        source: io_err(path, e),
    }
}

//! Binding listeners: loopback TCP and a Unix socket with safe stale-socket handling.

use crate::error::StartError;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, UnixListener};

/// Mode of the Unix socket file: owner and group may connect.
pub(crate) const SOCKET_MODE: u32 = 0o660;

pub(crate) async fn bind_tcp(
    what: &'static str,
    addr: SocketAddr,
) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// A bound Unix socket; the file is removed when this is dropped.
#[derive(Debug)]
pub(crate) struct UnixSocket {
    pub(crate) listener: UnixListener,
    pub(crate) path: PathBuf,
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path`, creating its directory if needed. An existing socket file is
/// replaced when nothing accepts on it (left by a crash) and is an error when a live
/// process holds it; any other kind of file there is an error, never deleted.
pub(crate) fn bind_unix(path: &Path) -> Result<UnixSocket, StartError> {
    let bind_err = |source: io::Error| StartError::Bind {
        what: "unix socket",
        addr: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        create_socket_dir(dir).map_err(bind_err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(StartError::SocketInUse(path.to_owned())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    tracing::warn!(path = %path.display(), "replacing stale socket left by an earlier process");
                    std::fs::remove_file(path).map_err(bind_err)?;
                }
                Err(e) => return Err(bind_err(e)),
            }
        }
        Ok(_) => {
            return Err(bind_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way; remove it or choose another listen.unix",
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    let socket = UnixSocket {
        listener,
        path: path.to_owned(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(bind_err)?;
    Ok(socket)
}

/// Mode of the directories custody creates for the Unix socket: owner and group.
pub(crate) const SOCKET_DIR_MODE: u32 = 0o770;

/// Creates `dir` and its missing parents with [`SOCKET_DIR_MODE`], whatever the
/// umask: the mode asked of `mkdir` is masked by it (0750 under the usual 022), so
/// each directory created is given its mode explicitly afterwards. Directories that
/// already existed are left as they are.
fn create_socket_dir(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(SOCKET_DIR_MODE)
        .create(dir)?;
    for created in missing {
        std::fs::set_permissions(created, std::fs::Permissions::from_mode(SOCKET_DIR_MODE))?;
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_mode_and_stale_replacement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/custody.sock");
        let mode_of = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let before = mode_of(dir.path());
        let first = bind_unix(&path).expect("bind");
        assert_eq!(mode_of(&path), SOCKET_MODE);
        // The directory created has its documented mode whatever the umask (the
        // test's is usually 022, which would leave 0750).
        assert_eq!(mode_of(&dir.path().join("sub")), SOCKET_DIR_MODE);
        assert_eq!(
            mode_of(dir.path()),
            before,
            "an existing directory is left alone"
        );
        // A live listener holds the path.
        assert!(matches!(bind_unix(&path), Err(StartError::SocketInUse(_))));
        drop(first);
        assert!(!path.exists(), "socket removed on drop");
        // A crash leaves the file behind without a listener; std's listener does not
        // remove its file, which simulates that.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("std bind"));
        assert!(path.exists());
        let second = bind_unix(&path).expect("stale socket replaced");
        drop(second);
        assert!(!path.exists(), "socket removed on drop");
    }

    #[test]
    fn refuses_to_delete_a_regular_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("custody.sock");
        std::fs::write(&path, b"data").expect("write");
        let err = bind_unix(&path).expect_err("must refuse");
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert!(path.exists());
    }
}

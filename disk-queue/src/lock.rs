//! An exclusive advisory lock on the queue directory, so that two collectors
//! never share one. The kernel releases it when the process dies, even on
//! `kill -9`, so a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// File name of the lock inside the queue directory.
pub const FILE: &str = "lock";

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the lock without waiting; `WouldBlock` if another process holds it.
pub fn acquire(dir: &Path) -> io::Result<DirLock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join(FILE))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return Err(if err.kind() == io::ErrorKind::WouldBlock {
                io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the directory is locked by another process",
                )
            } else {
                err
            });
        }
    }
    Ok(DirLock { _file: file })
}

//! The acknowledged low-watermark: every entry with a sequence number at or
//! below it has been dealt with and is never replayed. Stored in a small text
//! file replaced atomically (write a temporary file, then rename).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// File name of the watermark inside the queue directory.
pub const FILE: &str = "acked";
const TMP: &str = "acked.tmp";
const PREFIX: &str = "log-gardener-wal-acked ";

/// Reads the watermark; `Ok(None)` if there is none yet, `Err` with
/// `InvalidData` if the file is unreadable as a watermark.
pub fn read(dir: &Path) -> io::Result<Option<u64>> {
    let text = match fs::read_to_string(dir.join(FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    text.strip_prefix(PREFIX)
        .and_then(|rest| rest.trim_end().parse().ok())
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed watermark file"))
}

/// Replaces the watermark atomically; with `sync`, fsyncs the file and the
/// directory so that it survives a power loss.
pub fn write(dir: &Path, acked: u64, sync: bool) -> io::Result<()> {
    let tmp = dir.join(TMP);
    let mut file = File::create(&tmp)?;
    file.write_all(format!("{PREFIX}{acked}\n").as_bytes())?;
    if sync {
        file.sync_data()?;
    }
    drop(file);
    fs::rename(&tmp, dir.join(FILE))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory, so that files created, renamed or removed in it stay so.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), 41, true).unwrap();
        write(dir.path(), 42, false).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(42));
        fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert_eq!(
            read(dir.path()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}

//! One gateway per store (SPEC M17): an exclusive `flock` on `<database>.lock`,
//! held for as long as the store is open. The kernel drops it when the process
//! ends, however it ends, so a `kill -9` never leaves a stale lock behind; the
//! file itself stays and says who held it last.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::StoreError;

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

/// How long a lock held by someone else is waited for before it is reported.
/// A lock outlives its holder's `close` while a child process forked by the same
/// process (any thread, any library) has not yet exec'd: the fork shares the open
/// file. A moment's patience covers that; a real second gateway is reported
/// after it.
const PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

fn lock_exclusive(file: &File) -> Result<(), rustix::io::Errno> {
    let tries = 10;
    for _ in 1..tries {
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Err(rustix::io::Errno::WOULDBLOCK) => std::thread::sleep(PATIENCE / tries),
            other => return other,
        }
    }
    flock(file, FlockOperation::NonBlockingLockExclusive)
}

/// The lock file of the database at `path`.
pub(crate) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock, or says who holds it.
pub(crate) fn acquire(path: &Path) -> Result<StoreLock, StoreError> {
    let lock_path = lock_path(path);
    let doing = || format!("opening the lock file {}", lock_path.display());
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|error| StoreError::Io(format!("{}: {error}", doing())))?;
    match lock_exclusive(&file) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "holder unknown".to_owned(),
                text => text.to_owned(),
            };
            return Err(StoreError::Locked {
                path: path.display().to_string(),
                holder,
            });
        }
        Err(error) => return Err(StoreError::Io(format!("{}: flock: {error}", doing()))),
    }
    // Who holds it, for the error the next process prints.
    let holder = format!(
        "pid {} ({})",
        std::process::id(),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(holder.as_bytes()));
    if let Err(error) = written {
        // The lock holds without the note; only the error message is poorer.
        tracing::warn!(%error, path = %lock_path.display(), "cannot write the lock holder");
    }
    Ok(StoreLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC M17: a second lock on the same store is refused, naming the holder; it
    /// is free again once the first is dropped.
    #[test]
    fn second_holder_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hotsite.db");
        let first = acquire(&path).unwrap();
        let error = acquire(&path).unwrap_err();
        let StoreError::Locked { holder, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        assert!(error.to_string().contains("in use by another process"));
        drop(first);
        acquire(&path).unwrap();
    }
}

//! Files that hold customer data — buffer segments, dead letters, the carried source state — are
//! private to the conduit's user: directories 0700, files 0600 (Unix).
//!
//! Two layers: [`restrict_umask`] at process start makes everything the process creates private
//! even where a call site forgets, and [`create_dir`] / [`file_options`] set the modes
//! explicitly (and [`create_dir`] tightens a directory that already exists).

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

/// Makes files and directories the process creates from now on owner-only (umask 077).
pub fn restrict_umask() {
    #[cfg(unix)]
    // SAFETY: umask only changes the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and its missing parents) as 0700; one that exists is left as it is (it may be
/// the operator's, such as the data directory).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Creates one of the conduit's own directories (the buffer's, the dead letters') as 0700, and
/// makes it 0700 if it existed with wider permissions.
pub fn create_own_dir(dir: &Path) -> io::Result<()> {
    create_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// `OpenOptions` whose created file is 0600.
pub fn file_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Makes creations, renames and deletions in `dir` durable.
///
/// On Unix this fsyncs the directory. Windows (NTFS) journals directory metadata itself and
/// offers no directory handle to sync without extra privileges, so there it does nothing.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Replaces `path` with `bytes` atomically and durably: a private temporary file `tmp` (beside
/// it) is written and synced, renamed over `path`, and the directory synced — so after a crash
/// `path` holds either the old contents or the new, whole.
pub fn replace_file(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut f = file_options().write(true).create(true).truncate(true).open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(tmp, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => Ok(()),
    }
}

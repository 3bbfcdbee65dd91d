//! Files that hold customer data — buffer segments, dead letters, the carried ICWS state — are
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

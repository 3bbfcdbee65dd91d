//! [`RollingFile`]: the log written to a file, rolled by size — where there is no journal to
//! take standard error (a Windows service; an operator who sets `log.file`).
//!
//! Each log line is one `write` under a lock, so lines never interleave. When a line would take
//! the file past its size, the file is closed and renamed `<file>.1` (an older `.1` becomes `.2`,
//! and so on; the oldest beyond `keep` is deleted), and a new file is opened. A file that cannot
//! be written loses its lines to standard error instead of stopping the process: the log is not
//! the data.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;

/// A size-rolled log file.
pub struct RollingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    state: Mutex<State>,
}

struct State {
    file: Option<File>,
    written: u64,
}

impl RollingFile {
    /// Opens (appending to) `path`, creating its directory; rolled past `max_bytes`, keeping
    /// `keep` rolled files.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::private_fs::create_dir(dir)?;
        }
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(RollingFile {
            path: path.to_path_buf(),
            max_bytes,
            keep: keep.max(1),
            state: Mutex::new(State {
                file: Some(file),
                written,
            }),
        })
    }

    /// The name of the `n`th rolled file.
    pub fn rolled(path: &Path, n: u32) -> PathBuf {
        let mut name = path.as_os_str().to_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn write_line(&self, buf: &[u8]) -> io::Result<()> {
        let mut s = crate::locks::lock(&self.state);
        if s.written > 0 && s.written + buf.len() as u64 > self.max_bytes {
            // Closed before the renames: Windows renames no open file.
            s.file = None;
            self.roll();
            s.written = 0;
        }
        if s.file.is_none() {
            s.file = Some(open_append(&self.path)?);
        }
        let file = s.file.as_mut().expect("opened above");
        file.write_all(buf)?;
        s.written += buf.len() as u64;
        Ok(())
    }

    /// Moves each rolled file one up (dropping the oldest) and the current one to `.1`. A rename
    /// that fails leaves the file where it was: the next line goes on after it.
    fn roll(&self) {
        let _ = std::fs::remove_file(Self::rolled(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(Self::rolled(&self.path, n), Self::rolled(&self.path, n + 1));
        }
        let _ = std::fs::rename(&self.path, Self::rolled(&self.path, 1));
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    crate::private_fs::file_options().create(true).append(true).open(path)
}

/// One log line's writer.
pub struct LineWriter<'a>(&'a RollingFile);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.write_line(buf).is_err() {
            let _ = io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RollingFile {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(w: &RollingFile, text: &str) {
        w.make_writer().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn lines_go_on_after_what_the_file_holds_and_roll_at_the_size_keeping_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("conduit.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "from before\n").unwrap();
        let w = RollingFile::open(&path, 40, 2).unwrap();
        line(&w, "one: 0123456789\n");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "from before\none: 0123456789\n"
        );
        // 28 + 16 > 40: rolled first.
        line(&w, "two: 0123456789\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two: 0123456789\n");
        assert_eq!(
            std::fs::read_to_string(RollingFile::rolled(&path, 1)).unwrap(),
            "from before\none: 0123456789\n"
        );
        line(&w, "three: 012345678\n");
        line(&w, "four: 0123456789\n");
        line(&w, "five: 0123456789\n");
        line(&w, "six: 0123456789\n");
        // Two rolled files kept: the oldest lines are gone, no line is split.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "six: 0123456789\n");
        assert_eq!(
            std::fs::read_to_string(RollingFile::rolled(&path, 1)).unwrap(),
            "four: 0123456789\nfive: 0123456789\n"
        );
        assert_eq!(
            std::fs::read_to_string(RollingFile::rolled(&path, 2)).unwrap(),
            "two: 0123456789\nthree: 012345678\n"
        );
        assert!(!RollingFile::rolled(&path, 3).exists());
    }

    #[test]
    fn a_line_longer_than_the_size_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let w = RollingFile::open(&path, 8, 1).unwrap();
        line(&w, "a line of more than eight bytes\n");
        line(&w, "and another\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "and another\n");
        assert_eq!(
            std::fs::read_to_string(RollingFile::rolled(&path, 1)).unwrap(),
            "a line of more than eight bytes\n"
        );
    }
}

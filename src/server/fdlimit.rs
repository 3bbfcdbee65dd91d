//! The process's open-file limit: raised to what the system allows, and read to size the
//! connection cap so that connections can never take the descriptors the buffer needs.

/// Descriptors kept free of connections: buffer segments and their readers, dead-letter
/// files, the state file, outbound HTTP connections, logs.
pub const RESERVED: u64 = 128;

/// Raises the soft open-file limit to the hard one (Unix; as Go and the JVM do at start) and
/// returns the soft limit now in force, if the platform has one.
pub fn raise() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit write/read only the struct passed, which lives here.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
        Some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap that fits `limit` descriptors: `configured`, lowered so that
/// [`RESERVED`] stay free (never below 8).
pub fn connection_cap(configured: usize, limit: Option<u64>) -> usize {
    match limit {
        Some(l) => configured.min(l.saturating_sub(RESERVED).max(8) as usize),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_buffer() {
        assert_eq!(connection_cap(256, Some(65_536)), 256);
        assert_eq!(connection_cap(256, Some(256)), 128);
        assert_eq!(connection_cap(256, Some(64)), 8);
        assert_eq!(connection_cap(256, None), 256);
    }

    #[cfg(unix)]
    #[test]
    fn a_soft_limit_below_the_hard_one_is_raised_to_it() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `raise`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let hard = lim.rlim_max;
        // Lower the soft limit (still ample for this test process), then raise it back.
        let lowered = libc::rlimit {
            rlim_cur: hard.min(512),
            rlim_max: hard,
        };
        // SAFETY: as in `raise`.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        #[allow(clippy::unnecessary_cast)]
        let hard = hard as u64;
        assert_eq!(raise(), Some(hard));
    }
}

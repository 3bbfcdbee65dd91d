//! Arbitrary segment file contents through the segment scanner, as recovery and readers use it:
//! never panics, always ends, and never reports a frame beyond the file or out of order.
#![no_main]

use std::io::Write;

use cic_conduit::buffer::scan::{Scan, Scanner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(data).expect("write");
    let len = data.len() as u64;
    let mut s = Scanner::open(f.path(), 1 << 20).expect("open");
    let mut last_end = 0;
    for _ in 0..=data.len() + 1 {
        match s.next(len).expect("scan") {
            Scan::Frame { .. } => {
                assert!(s.offset() <= len && s.offset() > last_end);
                last_end = s.offset();
            }
            Scan::Corrupt { resume, .. } => assert!(resume <= len),
            Scan::Tail { offset } => {
                assert!(offset <= len);
                return;
            }
            Scan::End => return,
        }
    }
    panic!("the scanner did not end");
});

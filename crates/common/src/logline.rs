//! Log lines on stderr, with the lines that one step writes together
//! sent in one `write`.
//!
//! Every log line is a `write` to stderr (a pipe or journald's socket),
//! and each wakes the reader. A message's acceptance logs two lines at
//! once (`queued` and its `reception` event): [`together`] collects the
//! lines logged inside it on this thread and writes them with one call
//! when it ends, in order, before anything after it is logged here. It
//! holds no line back past its own end, so nothing is delayed or lost to
//! a crash beyond the few microseconds it lasts.

use std::cell::RefCell;
use std::io::{self, Write};

thread_local! {
    static PENDING: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Runs `f` (synchronous: no await inside), writing the lines it logs on
/// this thread in one `write` at its end. Nested calls join the outer one.
pub fn together<R>(f: impl FnOnce() -> R) -> R {
    struct Flush(bool);
    impl Drop for Flush {
        fn drop(&mut self) {
            if !self.0 {
                return;
            }
            // also on a panic in `f`: the lines go out and the thread
            // writes straight through again
            if let Some(buf) = PENDING.with(|p| p.borrow_mut().take())
                && !buf.is_empty()
            {
                let _ = io::stderr().write_all(&buf);
            }
        }
    }
    let outer = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_some() {
            return false;
        }
        *p = Some(Vec::new());
        true
    });
    let _flush = Flush(outer);
    f()
}

/// The log's writer: stderr, or the lines [`together`] collects.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stderr;

/// Appends `buf` to the lines [`together`] collects on this thread, if it
/// is collecting.
fn collected(buf: &[u8]) -> bool {
    PENDING.with(|p| match p.borrow_mut().as_mut() {
        Some(pending) => {
            pending.extend_from_slice(buf);
            true
        }
        None => false,
    })
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if collected(buf) {
            return Ok(buf.len());
        }
        io::stderr().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if collected(buf) {
            return Ok(());
        }
        io::stderr().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is collected so far on this thread, taken (so that the test
    /// writes nothing to the real stderr).
    fn take() -> Option<Vec<u8>> {
        PENDING.with(|p| p.borrow_mut().as_mut().map(std::mem::take))
    }

    #[test]
    fn lines_inside_are_collected_until_the_end_and_nested_calls_join() {
        let mut w = Stderr;
        let seen = together(|| {
            w.write_all(b"one\n").unwrap();
            together(|| w.write_all(b"two\n").unwrap());
            assert!(
                PENDING.with(|p| p.borrow().is_some()),
                "the inner end is not the end"
            );
            take()
        });
        assert_eq!(seen.as_deref(), Some(&b"one\ntwo\n"[..]));
        assert!(
            PENDING.with(|p| p.borrow().is_none()),
            "written out at the end"
        );
    }

    #[test]
    fn a_panic_inside_leaves_the_thread_writing_straight_through() {
        let r = std::panic::catch_unwind(|| {
            together(|| {
                Stderr.write_all(b"").unwrap();
                panic!("inside");
            })
        });
        assert!(r.is_err());
        assert!(PENDING.with(|p| p.borrow().is_none()));
    }
}

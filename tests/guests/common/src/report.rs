//! A test guest's output: one `TEST <name> PASS [<note>]` or
//! `TEST <name> FAIL <why>` line per case and the closing
//! `N passed, M failed` line, which the xtask checks (docs/testing.md).
//! How the guest ends its run after that stays its own.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::msg::Msg;
use crate::println;

/// What a case returns: a note to add to its PASS line (often empty), or
/// why it failed.
pub type Verdict = Result<Msg, Msg>;

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);
/// The running case's name, for a fault that ends the run inside it.
static CURRENT_PTR: AtomicUsize = AtomicUsize::new(0);
static CURRENT_LEN: AtomicUsize = AtomicUsize::new(0);

fn current() -> &'static str {
    let (p, n) = (
        CURRENT_PTR.load(Ordering::Acquire),
        CURRENT_LEN.load(Ordering::Acquire),
    );
    if p == 0 {
        return "run";
    }
    // SAFETY: `p` and `n` are a `&'static str`'s pointer and length, stored
    // by `case` (only vCPU0 runs cases and reads them).
    let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, n) };
    core::str::from_utf8(bytes).unwrap_or("run")
}

/// Runs one case and prints its line. Case names are one word, dotted.
pub fn case(name: &'static str, f: impl FnOnce() -> Verdict) {
    CURRENT_LEN.store(name.len(), Ordering::Release);
    CURRENT_PTR.store(name.as_ptr() as usize, Ordering::Release);
    match f() {
        Ok(note) if note.is_empty() => {
            PASSED.store(PASSED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            println!("TEST {name} PASS");
        }
        Ok(note) => {
            PASSED.store(PASSED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            println!("TEST {name} PASS {note}");
        }
        Err(why) => {
            FAILED.store(FAILED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            println!("TEST {name} FAIL {why}");
        }
    }
    CURRENT_PTR.store(0, Ordering::Release);
}

/// Prints the closing line.
pub fn summary() {
    println!(
        "{} passed, {} failed",
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed)
    );
}

/// Fails the running case with `why` (for a fault or panic that ends the
/// run inside it).
pub fn fail_running(why: Msg) {
    let name = current();
    FAILED.store(FAILED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    println!("TEST {name} FAIL {why}");
}

/// `Err` with a formatted reason unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::msg!($($arg)*));
        }
    };
}

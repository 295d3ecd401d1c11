//! The hypervisor console: a byte sink the boot code installs once (the
//! early UART, then the UART named by `/chosen/stdout-path`) and the
//! `println!` macro that writes whole lines to it.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::cell::BootCell;

/// Something bytes can be written to.
pub trait Sink: Sync {
    fn write_bytes(&self, bytes: &[u8]);
}

static SINK: spin::RwLock<Option<&'static dyn Sink>> = spin::RwLock::new(None);
static LINE: spin::Mutex<()> = spin::Mutex::new(());
/// Before the MMU is on, exclusive accesses (and so locks) are not
/// architecturally safe; the boot CPU writes without locking until then.
static LOCKS_USABLE: AtomicBool = AtomicBool::new(false);
static EARLY_SINK: BootCell<&'static dyn Sink> = BootCell::new();

/// Installs `sink` before the MMU is on (ignored once [`enable_locking`]
/// ran).
pub fn set_early_sink(sink: &'static dyn Sink) {
    EARLY_SINK.set(sink);
}

/// Switches the console to locked operation (called once the MMU is on) and
/// keeps whatever early sink was installed.
pub fn enable_locking() {
    if LOCKS_USABLE.swap(true, Ordering::AcqRel) {
        return;
    }
    EARLY_SINK.seal();
    *SINK.write() = EARLY_SINK.get();
}

/// Replaces the console sink (after locking is enabled).
pub fn set_sink(sink: &'static dyn Sink) {
    *SINK.write() = Some(sink);
}

struct Writer<'a>(&'a dyn Sink);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.split_inclusive('\n') {
            match chunk.strip_suffix('\n') {
                Some(line) => {
                    self.0.write_bytes(line.as_bytes());
                    self.0.write_bytes(b"\r\n");
                }
                None => self.0.write_bytes(chunk.as_bytes()),
            }
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn print_fmt(args: fmt::Arguments<'_>) {
    if !LOCKS_USABLE.load(Ordering::Acquire) {
        if let Some(sink) = EARLY_SINK.get() {
            let _ = Writer(sink).write_fmt(args);
        }
        return;
    }
    let sink = *SINK.read();
    if let Some(sink) = sink {
        let _guard = LINE.lock();
        let _ = Writer(sink).write_fmt(args);
    }
}

/// Writes to the console without waiting for the line lock: for fault
/// reports, where the faulting CPU may already hold it.
pub fn print_fmt_unlocked(args: fmt::Arguments<'_>) {
    let sink = if LOCKS_USABLE.load(Ordering::Acquire) {
        SINK.try_read().and_then(|s| *s)
    } else {
        EARLY_SINK.get()
    };
    if let Some(sink) = sink {
        let _ = Writer(sink).write_fmt(args);
    }
}

/// Prints a line to the hypervisor console, prefixed `(XEN)`-style with
/// `(oxen)`.
#[macro_export]
macro_rules! println {
    () => { $crate::console::print_fmt(format_args!("(oxen)\n")) };
    ($($arg:tt)*) => {
        $crate::console::print_fmt(format_args!("(oxen) {}\n", format_args!($($arg)*)))
    };
}

//! Fuzz target `hostdt`: see `oxen_fuzz::host`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oxen_fuzz::host::run(data);
});

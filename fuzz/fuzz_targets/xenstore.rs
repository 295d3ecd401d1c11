//! Fuzz target `xenstore`: see `oxen_fuzz::xenstore`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oxen_fuzz::xenstore::run(data);
});

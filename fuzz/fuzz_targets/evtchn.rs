//! Fuzz target `evtchn`: see `oxen_fuzz::evtchn`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oxen_fuzz::evtchn::run(data);
});

//! Fuzz target `gnttab`: see `oxen_fuzz::gnttab`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oxen_fuzz::gnttab::run(data);
});

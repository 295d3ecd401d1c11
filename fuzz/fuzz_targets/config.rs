//! Fuzz target `config`: the host-tree readers of `hostdt`, fed blobs
//! edited as trees (`oxen_fuzz::dtb`) from the repository's configs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    oxen_fuzz::host::run(data);
});

libfuzzer_sys::fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    oxen_fuzz::dtb::mutate_blob(data, size, max_size, seed, |d, s, m| {
        libfuzzer_sys::fuzzer_mutate(d, s, m)
    })
});

#![no_main]
//! `cargo fuzz run -s none decode_frame`: see `mqstore_fuzz::check_decode_frame` (fuzz/src/lib.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mqstore_fuzz::check_decode_frame(data));

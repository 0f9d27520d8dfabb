#![no_main]
//! `cargo fuzz run -s none recover_store`: see `mqstore_fuzz::check_recover_store` (fuzz/src/lib.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mqstore_fuzz::check_recover_store(data));

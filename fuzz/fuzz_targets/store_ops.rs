#![no_main]
//! `cargo fuzz run -s none store_ops`: see `mqstore_fuzz::check_store_ops` (fuzz/src/lib.rs) for what it checks.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mqstore_fuzz::check_store_ops(data));

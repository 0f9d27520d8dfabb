//! Replays every seed of every fuzz target (`fuzz/corpus/<target>/*`) through the target's own
//! checks, so that a plain `cargo test` keeps the fuzz targets compiling and their seeds passing
//! (inputs that once crashed a target are kept there as seeds, so this is also the regression
//! suite of what fuzzing found). The checks are `fuzz/src/lib.rs`, shared with the cargo-fuzz
//! crate; see that file for what each target checks.
//!
//! `MQSTORE_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_corpus` rewrites the generated seeds (after
//! a change of the record format, say).

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Panics of the store's own threads (`mqstore-*`): the fuzzer aborts on them, a test harness
/// would not notice them.
static BACKGROUND_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_background_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if std::thread::current().name().is_some_and(|n| n.starts_with("mqstore-")) {
                BACKGROUND_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = repo().join("fuzz/corpus").join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seed in {}", dir.display());
    seeds
}

/// Runs `check` on every seed of `target`, then fails listing every seed that failed.
fn replay(target: &str, check: fn(&[u8])) {
    count_background_panics();
    let mut failed = Vec::new();
    for seed in corpus(target) {
        let data = std::fs::read(&seed).expect("read seed");
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(seed.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: seeds failing their check:\n{}",
        failed.join("\n")
    );
    assert_eq!(BACKGROUND_PANICS.load(Ordering::SeqCst), 0, "a store thread panicked");
}

#[test]
fn decode_record_seeds() {
    replay("decode_record", checks::check_decode_record);
}

#[test]
fn decode_cq_unit_seeds() {
    replay("decode_cq_unit", checks::check_decode_cq_unit);
}

#[test]
fn decode_frame_seeds() {
    replay("decode_frame", checks::check_decode_frame);
}

#[test]
fn recover_store_seeds() {
    replay("recover_store", checks::check_recover_store);
}

#[test]
fn store_ops_seeds() {
    replay("store_ops", checks::check_store_ops);
}

/// The generated seeds are in place, byte for byte: they are how the targets start, and the
/// recover_store ones name files of the base store by index.
#[test]
fn generated_seeds_are_current() {
    let write = std::env::var_os("MQSTORE_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (rel, bytes) in checks::generated_seeds(repo()) {
        let path = repo().join("fuzz").join(&rel);
        if std::fs::read(&path).ok().as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        if write {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create corpus dir");
            std::fs::write(&path, &bytes).expect("write seed");
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "generated fuzz seeds missing or out of date (rerun with MQSTORE_WRITE_FUZZ_SEEDS=1):\n{}",
        stale.join("\n")
    );
}

/// Each known crash (an open library bug, see `checks::known_crashes`) still fails its check:
/// when one passes, the bug is fixed and its input belongs in the corpus.
#[test]
fn known_crashes_still_fail() {
    let mut changed = Vec::new();
    for (target, name, _, bug, symptom) in checks::known_crashes() {
        let path = repo().join("fuzz/known-crashes").join(target).join(name);
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let check: fn(&[u8]) = match target {
            "decode_record" => checks::check_decode_record,
            "decode_cq_unit" => checks::check_decode_cq_unit,
            "decode_frame" => checks::check_decode_frame,
            "recover_store" => checks::check_recover_store,
            "store_ops" => checks::check_store_ops,
            other => panic!("unknown target {other}"),
        };
        match panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            Ok(()) => changed.push(format!(
                "{} passes now ({bug}): move it to fuzz/corpus/{target}/ (from checks::known_crashes \
                 to the target's seeds)",
                path.display()
            )),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                if !message.contains(symptom) {
                    changed.push(format!("{} fails differently now: {message}", path.display()));
                }
            }
        }
    }
    assert!(changed.is_empty(), "known crashes changed:\n{}", changed.join("\n"));
}

/// The base store of recover_store is the same in every run, so that a crashing input replays.
#[test]
fn base_store_is_deterministic() {
    let (a, b) = (checks::build_base_store(), checks::build_base_store());
    assert_eq!(a.messages, b.messages);
    assert_eq!(a.files.keys().collect::<Vec<_>>(), b.files.keys().collect::<Vec<_>>());
    let differing: Vec<String> = a
        .files
        .iter()
        .filter(|(k, v)| b.files[*k] != **v)
        .map(|(k, v)| {
            let at = v.iter().zip(&b.files[k]).position(|(x, y)| x != y);
            format!("{k} (first difference at byte {at:?})")
        })
        .collect();
    assert!(
        differing.is_empty(),
        "the base store differs between two builds: {differing:?}"
    );
    assert!(
        a.files.keys().filter(|k| k.starts_with("commitlog/")).count() >= 3,
        "the base store spans several segments: {:?}",
        a.files.keys().collect::<Vec<_>>()
    );
}

/// Every seed's input format round-trips, so that the generator writes what the target reads.
#[test]
fn structured_inputs_round_trip() {
    for seed in corpus("recover_store") {
        let data = std::fs::read(&seed).expect("read seed");
        let input = checks::RecoverInput::decode(&data);
        assert_eq!(
            checks::RecoverInput::decode(&input.encode()),
            input,
            "{}",
            seed.display()
        );
    }
    for seed in corpus("store_ops") {
        let data = std::fs::read(&seed).expect("read seed");
        let input = checks::StoreOps::decode(&data);
        assert_eq!(checks::StoreOps::decode(&input.encode()), input, "{}", seed.display());
    }
}

/// The decode_record seeds reach its round-trip check (rather than all being skipped as
/// non-canonical), and the V2 seed is skipped for the documented reason.
#[test]
fn record_round_trip_is_exercised() {
    use mqstore::codec::{Frame, Verify, decode};
    let mut canonical = 0;
    for seed in corpus("decode_record") {
        let data = std::fs::read(&seed).expect("read seed");
        if let Ok(Frame::Record(view)) = decode(&data, Verify::RequireRecordCrc) {
            match checks::non_canonical(&view) {
                None => canonical += 1,
                Some(why) => assert!(why.starts_with("V2"), "{}: {why}", seed.display()),
            }
        }
    }
    assert!(canonical >= 4, "only {canonical} seeds reach the round trip");
}

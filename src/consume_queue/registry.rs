//! The consume-queue registry, `config/consumeQueues.json`: which queues the store has and what
//! their files held when it was last written, so that recovery can tell a queue whose files were
//! lost (deleted by hand, a first or last file missing, a whole `consumequeue/` gone) from a
//! queue that never existed, and rebuild it from the commit log.
//!
//! The registry only ever understates: `maxOffset` is a count of units that were durable when it
//! was written, `firstOffset` the first unit the queue's files held. Recovery rebuilds a queue
//! whose files hold less (see `recovery`); a queue that holds more is simply newer. The file is
//! written whole with a backup (as the consumer offsets are), before the checkpoint that covers
//! it, so every queue the checkpoint counts as dispatched is in it. It is derived data too: a
//! registry that cannot be read in either copy is a warning, never a failed open.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::consumer_offset::CONFIG_DIR;
use crate::error::{IoContext, Result};
use crate::files::{BackedUpFile, sync_dir};

/// The registry's file name in the store's `config/` directory.
pub const REGISTRY_FILE: &str = "consumeQueues.json";

/// What the registry says of one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisteredQueue {
    /// The first unit the queue's files held.
    pub first_offset: u64,
    /// Units durable when the registry was written (a lower bound of what the files hold).
    pub max_offset: u64,
}

/// Queues by (topic, queue id).
pub type Registered = BTreeMap<(String, u32), RegisteredQueue>;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Row {
    topic: String,
    queue_id: u32,
    first_offset: u64,
    max_offset: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    version: u32,
    queues: Vec<Row>,
}

const VERSION: u32 = 1;

struct SaveState {
    /// What the files hold (the last version written or loaded).
    saved: Registered,
    main_valid: bool,
    dir_ready: bool,
}

/// The registry of a store, loaded at open and saved with each checkpoint that changes it.
pub struct Registry {
    store_dir: PathBuf,
    dir: PathBuf,
    file: BackedUpFile,
    state: Mutex<SaveState>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> std::result::Result<Option<Registered>, String> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    let shape: FileShape = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if shape.version != VERSION {
        return Err(format!("version {} (this build reads {VERSION})", shape.version));
    }
    let mut queues = Registered::new();
    for row in shape.queues {
        if row.first_offset > row.max_offset {
            return Err(format!(
                "{}/{}: first offset {} past max offset {}",
                row.topic, row.queue_id, row.first_offset, row.max_offset
            ));
        }
        let queue = RegisteredQueue {
            first_offset: row.first_offset,
            max_offset: row.max_offset,
        };
        queues.insert((row.topic, row.queue_id), queue);
    }
    Ok(Some(queues))
}

impl Registry {
    /// Loads the registry of the store in `store_dir`: the main file, else the backup. `None`
    /// when neither exists (a new store, one an older mqstore or RocketMQ wrote) or neither can
    /// be read (warned).
    pub fn load(store_dir: &Path) -> (Self, Option<Registered>) {
        let dir = store_dir.join(CONFIG_DIR);
        let file = BackedUpFile::new(&dir, REGISTRY_FILE);
        let (loaded, main_valid) = match read(file.main()) {
            Ok(Some(queues)) => (Some(queues), true),
            main => {
                let main_reason = main.err();
                match read(file.backup()) {
                    Ok(found) => {
                        if let Some(reason) = &main_reason {
                            tracing::warn!(path = %file.main().display(), %reason, "consume-queue registry unreadable: using the backup");
                        }
                        (found, false)
                    }
                    Err(reason) => {
                        tracing::warn!(
                            path = %file.main().display(), main = ?main_reason, backup = %reason,
                            "consume-queue registry unreadable: queues are checked against the log instead"
                        );
                        (None, false)
                    }
                }
            }
        };
        let registry = Registry {
            store_dir: store_dir.to_path_buf(),
            dir,
            file,
            state: Mutex::new(SaveState {
                saved: loaded.clone().unwrap_or_default(),
                main_valid,
                dir_ready: false,
            }),
        };
        (registry, loaded)
    }

    /// Writes `now` if it differs from what the file holds in a way recovery would misjudge: a
    /// queue added or gone, a first offset moved, a max offset that went down (a truncation).
    /// A max offset that only grew is written when `exact` (at close) and otherwise waits: the
    /// file then understates, which is safe.
    pub fn save(&self, now: Registered, exact: bool) -> Result<()> {
        self.save_with(|| now, exact)
    }

    /// As [`save`](Self::save), with the view taken under the registry's lock.
    pub fn save_with(&self, now: impl FnOnce() -> Registered, exact: bool) -> Result<()> {
        let mut state = self.state.lock();
        let now = now();
        let stale = |saved: &Registered| {
            saved.len() != now.len()
                || saved.iter().zip(&now).any(|((k1, a), (k2, b))| {
                    k1 != k2 || a.first_offset != b.first_offset || b.max_offset < a.max_offset
                })
        };
        if !(stale(&state.saved) || exact && state.saved != now) {
            return Ok(());
        }
        let rows: Vec<Row> = now
            .iter()
            .map(|((topic, queue_id), queue)| Row {
                topic: topic.clone(),
                queue_id: *queue_id,
                first_offset: queue.first_offset,
                max_offset: queue.max_offset,
            })
            .collect();
        let mut bytes = serde_json::to_vec_pretty(&FileShape {
            version: VERSION,
            queues: rows,
        })
        .map_err(|e| crate::error::Error::io(self.file.main(), io::Error::other(e)))?;
        bytes.push(b'\n');
        if !state.dir_ready {
            fs::create_dir_all(&self.dir).at(&self.dir)?;
            sync_dir(&self.store_dir)?;
            state.dir_ready = true;
        }
        let state = &mut *state;
        self.file.replace(&bytes, &mut state.main_valid)?;
        state.saved = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(first: u64, max: u64) -> Registered {
        let mut r = Registered::new();
        r.insert(
            ("t".into(), 3),
            RegisteredQueue {
                first_offset: first,
                max_offset: max,
            },
        );
        r
    }

    #[test]
    fn saves_what_recovery_needs_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let (reg, loaded) = Registry::load(dir.path());
        assert_eq!(loaded, None);
        reg.save(one(0, 10), false).unwrap();
        assert_eq!(Registry::load(dir.path()).1, Some(one(0, 10)));
        // Growth alone waits for an exact save; a cut is written at once.
        reg.save(one(0, 20), false).unwrap();
        assert_eq!(Registry::load(dir.path()).1, Some(one(0, 10)));
        reg.save(one(0, 20), true).unwrap();
        assert_eq!(Registry::load(dir.path()).1, Some(one(0, 20)));
        reg.save(one(0, 5), false).unwrap();
        assert_eq!(Registry::load(dir.path()).1, Some(one(0, 5)));
        reg.save(one(64, 70), false).unwrap();
        assert_eq!(Registry::load(dir.path()).1, Some(one(64, 70)));
    }

    #[test]
    fn a_damaged_file_falls_back_to_the_backup_then_to_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (reg, _) = Registry::load(dir.path());
        reg.save(one(0, 10), true).unwrap();
        reg.save(one(0, 12), true).unwrap();
        let main = dir.path().join(CONFIG_DIR).join(REGISTRY_FILE);
        fs::write(&main, b"{\"version\":1,\"queues\":[{").unwrap();
        assert_eq!(Registry::load(dir.path()).1, Some(one(0, 10)), "the backup");
        fs::write(main.with_extension("json.bak"), b"garbage").unwrap();
        assert_eq!(Registry::load(dir.path()).1, None);
        // Saving again over a bad main file leaves a good main file.
        let (reg, _) = Registry::load(dir.path());
        reg.save(one(0, 13), true).unwrap();
        assert_eq!(Registry::load(dir.path()).1, Some(one(0, 13)));
        // Inconsistent rows are refused, not believed.
        fs::write(
            &main,
            br#"{"version":1,"queues":[{"topic":"t","queueId":3,"firstOffset":9,"maxOffset":2}]}"#,
        )
        .unwrap();
        assert_eq!(Registry::load(dir.path()).1, None, "the backup is still the garbage");
    }
}

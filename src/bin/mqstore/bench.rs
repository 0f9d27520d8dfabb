//! `mqstore bench`: append throughput and latency, then sequential read throughput, for each
//! flush policy side by side.
//!
//! Per mode: open a fresh store, start N producer threads together, each putting its share of
//! the messages round-robin over the queues and timing every put; wait until the dispatcher has
//! built the consume queues; read every queue from offset 0 through `get` and check what comes
//! back (count, bytes, and each body's sequence number against its queue); close the store.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The clock of put latencies: the one the store times its puts with (`MessageStore::stats`), a
/// time-stamp counter read where the CPU keeps it invariant, cheaper than `Instant::now` by about
/// 10 ns a reading here.
use quanta::Instant as Tick;

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mqstore::config::DEFAULT_MAX_QUEUES_PER_TOPIC;
use mqstore::replication::{ReplicationConfig, Role};
use mqstore::{
    DiskUsage, FlushPolicy, GetStatus, Message, MessageStore, PendingPut, PutStatus, RetentionConfig, StoreConfig,
};

use crate::{Failure, Outcome};

#[path = "hiccup.rs"]
mod hiccup;

/// Topic the benchmark writes.
const TOPIC: &str = "bench";
/// Messages put to each queue before timing starts (see `run_mode`); readers skip them.
const PRIMED: u64 = 1;
/// Messages per `get` by default: RocketMQ's default pull batch.
const GET_BATCH: u32 = 32;
/// Puts between two progress-bar updates (a shared counter touched per put would perturb it).
const PROGRESS_STEP: u64 = 256;
/// How long the dispatcher may take to catch up after the put phase.
const DISPATCH_WAIT: Duration = Duration::from_secs(120);
/// Bytes a record adds to its body for topic "bench", no tags or keys, and the CRC property
/// (fixed fields 91 + topic 5 + the 20-byte CRC property), rounded up with room to spare.
const RECORD_OVERHEAD: u64 = 128;
/// Digits of the sequence number at the start of every body (when the body is long enough).
const SEQ_DIGITS: usize = 20;
/// Largest body accepted: the store's default `max_message_size`.
const MAX_SIZE: u32 = 4 << 20;

/// Arguments of `mqstore bench`.
///
/// Defaults depend on the mode: `sync` waits for an fdatasync per group commit, so it gets more
/// producers (to fill the groups) and fewer messages (to finish in seconds); the modes that do
/// not wait get 4 producers and 4,000,000 messages (about 4.5 GiB of log). Explicit flags apply to every mode.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory for the stores: one fresh subdirectory per mode (`DIR/sync`, `DIR/async`), which
    /// must not exist or be empty, and which is kept afterwards. Default: a temporary directory
    /// per mode, removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Start each store from this configuration file (`mqstore config --default` writes one);
    /// the bench's own settings (flush mode, segment size, warm-up, zero fill, and retention
    /// with --steady, the role with --replicate) are applied on top, and its directory is the
    /// bench's.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Flush policy to measure; `all` runs every policy available.
    #[arg(long, value_enum, default_value_t = FlushArg::All)]
    pub flush: FlushArg,
    /// Producer threads [default: 64 for sync, 4 otherwise].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub producers: Option<u32>,
    /// Messages per mode, split evenly over the producers [default: 400000 for sync, 4000000 otherwise].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: Option<u64>,
    /// Body size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SIZE)))]
    pub size: u32,
    /// Queues of topic "bench", written round-robin.
    #[arg(long, value_name = "Q", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(DEFAULT_MAX_QUEUES_PER_TOPIC)))]
    pub queues: u32,
    /// Commit-log segment size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20, value_parser = clap::value_parser!(u64).range(4096..=1 << 40))]
    pub segment_size: u64,
    /// Do not touch each new commit-log segment's pages before use (warm-up is on by default).
    #[arg(long)]
    pub no_warm_up: bool,
    /// Write zeros over each new commit-log segment before use (`on`/`off`) [default: on for
    /// sync, off otherwise; see `StoreConfig::zero_fill_segments`].
    #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
    pub zero_fill: Option<bool>,
    /// Write buffers: for buffered, the pool size [default 3]; for sync, the buffers appends go
    /// through, each sync writing them to the file first, 0 to append into the file mapping
    /// [default 2].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=64))]
    pub write_buffers: Option<u32>,
    /// Reader threads of the read phase, each paging its share of the queues [default: one per
    /// core, at most one per queue].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub readers: Option<u32>,
    /// Messages per put: above 1, each producer appends with `put_batch` (one lock, one
    /// durability wait per batch), and every message of a batch is charged the batch's latency.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub put_batch: u32,
    /// Puts each producer keeps in flight: above 1, it appends with `put_async` and waits for
    /// the oldest once this many are pending (not with `--put-batch`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub in_flight: u32,
    /// Messages each `get` of the read phase asks for.
    #[arg(long, value_name = "N", default_value_t = GET_BATCH, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub get_batch: u32,
    /// Also run each mode with a slave in the same process, over 127.0.0.1: `sync` (a sync
    /// master: a put returns once the slave holds it) or `async` (an async master). Each mode's
    /// unreplicated row comes first, for comparison in the same run.
    #[arg(long, value_enum, default_value_t = ReplicateArg::Off)]
    pub replicate: ReplicateArg,
    /// Also run each mode in a steady state: retention keeps the log within a budget of
    /// `--budget-segments` segments (deleting the oldest as the run writes, recycling their
    /// files), as a broker that has run for days does. Each mode's fresh row comes first, for
    /// comparison in the same run. The store is first filled (untimed) with twice the budget,
    /// then the timed run writes at least four times the budget, so that every file is
    /// recycled again and again.
    #[arg(long)]
    pub steady: bool,
    /// The steady state's disk budget, in commit-log segments (the recycle bin's two included).
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u64).range(4..=1024))]
    pub budget_segments: u64,
    /// Print one JSON object per mode per line on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
}

/// The `--replicate` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReplicateArg {
    /// No slave.
    Off,
    /// A sync master and its slave.
    Sync,
    /// An async master and its slave.
    Async,
}

impl ReplicateArg {
    fn name(self) -> &'static str {
        match self {
            ReplicateArg::Off => "off",
            ReplicateArg::Sync => "sync",
            ReplicateArg::Async => "async",
        }
    }

    fn role(self) -> Option<Role> {
        match self {
            ReplicateArg::Off => None,
            ReplicateArg::Sync => Some(Role::sync_master()),
            ReplicateArg::Async => Some(Role::AsyncMaster),
        }
    }
}

/// The `--flush` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlushArg {
    /// Group commit: a put returns once its bytes are durable.
    Sync,
    /// Background flush: a put returns once its bytes are in the page cache.
    Async,
    /// Writes through a pool of pre-allocated buffers, committed and flushed in the background.
    Buffered,
    /// Every mode available.
    All,
}

/// A flush mode the benchmark knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Sync,
    Async,
    Buffered,
}

/// Every mode, in the order `all` runs them.
const MODES: [Mode; 3] = [Mode::Sync, Mode::Async, Mode::Buffered];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Async => "async",
            Mode::Buffered => "buffered",
        }
    }

    /// The policy measured.
    fn policy(self) -> FlushPolicy {
        match self {
            Mode::Sync => FlushPolicy::sync(),
            Mode::Async => FlushPolicy::asynchronous(),
            Mode::Buffered => FlushPolicy::buffered(),
        }
    }

    fn default_producers(self) -> u32 {
        match self {
            // Enough waiters for each fdatasync to cover a large group.
            Mode::Sync => 64,
            Mode::Async | Mode::Buffered => 4,
        }
    }

    fn default_messages(self) -> u64 {
        match self {
            // Bounded by fdatasync latency (0.1–4 ms on the project's machines): seconds, not minutes.
            Mode::Sync => 400_000,
            Mode::Async | Mode::Buffered => 4_000_000,
        }
    }
}

/// Everything one mode's run needs.
#[derive(Clone, Debug)]
struct Plan {
    mode: Mode,
    policy: FlushPolicy,
    producers: u32,
    messages: u64,
    size: u32,
    queues: u32,
    segment_size: u64,
    warm_up: bool,
    zero_fill: Option<bool>,
    put_batch: u32,
    in_flight: u32,
    /// `None`: one per core.
    readers: Option<u32>,
    get_batch: u32,
    replicate: ReplicateArg,
    /// The steady state's budget in segments; `None`: a fresh store, nothing deleted.
    steady: Option<u64>,
    /// `None`: a temporary directory.
    dir: Option<PathBuf>,
    /// The configuration file's settings (`--config`), under the bench's own.
    base: Option<StoreConfig>,
}

impl Plan {
    /// The store configuration the plan starts from, for the store in `dir`.
    fn base_config(&self, dir: &Path) -> StoreConfig {
        match &self.base {
            Some(c) => c.clone().store_dir(dir),
            None => StoreConfig::new(dir),
        }
    }
}

impl Plan {
    /// The mode's name in reports: with the replication, when there is a slave.
    fn label(&self) -> String {
        let mut label = match self.replicate {
            ReplicateArg::Off => self.mode.name().to_string(),
            r => format!("{}+{}-slave", self.mode.name(), r.name()),
        };
        if self.steady.is_some() {
            label.push_str("+steady");
        }
        label
    }
}

/// What one mode measured.
#[derive(Debug)]
struct Report {
    plan: Plan,
    append_elapsed: Duration,
    /// Put latencies in nanoseconds.
    latency: Histogram<u64>,
    put_errors: u64,
    put_not_ok: u64,
    first_error: Option<String>,
    dispatch_elapsed: Duration,
    read_elapsed: Duration,
    readers: usize,
    read_messages: u64,
    read_problems: Vec<String>,
    close_elapsed: Duration,
    /// How long the slave took, after the last put returned, to hold everything.
    replica_lag: Duration,
    /// Segments the run took from the recycle bin.
    recycled: u64,
    /// Commit-log segments retention deleted during the run.
    segments_deleted: u64,
    /// How late, in nanoseconds, an idle thread woke during the append phase (see `hiccup`).
    hiccups: Histogram<u64>,
}

impl Report {
    fn appended(&self) -> u64 {
        self.plan.messages - self.put_errors
    }

    fn append_msgs_per_s(&self) -> f64 {
        per_second(self.appended() as f64, self.append_elapsed)
    }

    fn append_mib_per_s(&self) -> f64 {
        per_second(
            self.appended() as f64 * f64::from(self.plan.size) / MIB,
            self.append_elapsed,
        )
    }

    fn read_msgs_per_s(&self) -> f64 {
        per_second(self.read_messages as f64, self.read_elapsed)
    }

    fn read_mib_per_s(&self) -> f64 {
        per_second(
            self.read_messages as f64 * f64::from(self.plan.size) / MIB,
            self.read_elapsed,
        )
    }

    /// A latency quantile in microseconds.
    fn quantile_us(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    fn max_us(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }

    /// The idle thread's latest wake-up during the append phase.
    fn hiccup_max_us(&self) -> f64 {
        self.hiccups.max() as f64 / 1000.0
    }

    fn failed(&self) -> bool {
        self.put_errors > 0 || self.put_not_ok > 0 || !self.read_problems.is_empty()
    }

    fn json(&self) -> String {
        let p = &self.plan;
        let mut s = String::from("{");
        let _ = write!(
            s,
            "\"flush\":\"{}\",\"replicate\":\"{}\",\"steady\":{},\"producers\":{},\"messages\":{},\"size\":{},\"queues\":{},\"segment_size\":{},\"warm_up\":{},",
            p.mode.name(),
            p.replicate.name(),
            p.steady.is_some(),
            p.producers,
            p.messages,
            p.size,
            p.queues,
            p.segment_size,
            p.warm_up
        );
        let nums = [
            ("append_msgs_per_s", self.append_msgs_per_s()),
            ("append_mib_per_s", self.append_mib_per_s()),
            ("p50_us", self.quantile_us(0.50)),
            ("p99_us", self.quantile_us(0.99)),
            ("p999_us", self.quantile_us(0.999)),
            ("max_us", self.max_us()),
            ("hiccup_max_us", self.hiccup_max_us()),
            ("elapsed_s", self.append_elapsed.as_secs_f64()),
            ("dispatch_wait_s", self.dispatch_elapsed.as_secs_f64()),
            ("read_msgs_per_s", self.read_msgs_per_s()),
            ("read_mib_per_s", self.read_mib_per_s()),
            ("read_elapsed_s", self.read_elapsed.as_secs_f64()),
            ("close_s", self.close_elapsed.as_secs_f64()),
            ("replica_lag_s", self.replica_lag.as_secs_f64()),
            ("recycled_segments", self.recycled as f64),
            ("deleted_segments", self.segments_deleted as f64),
        ];
        for (name, value) in nums {
            let _ = write!(s, "\"{name}\":{},", json_number(value));
        }
        let _ = write!(
            s,
            "\"put_batch\":{},\"in_flight\":{},\"readers\":{},\"get_batch\":{},\"read_messages\":{},\"put_errors\":{},\"put_not_ok\":{},\"read_errors\":{}}}",
            self.plan.put_batch,
            self.plan.in_flight,
            self.readers,
            self.plan.get_batch,
            self.read_messages,
            self.put_errors,
            self.put_not_ok,
            self.read_problems.len()
        );
        s
    }
}

const MIB: f64 = (1u64 << 20) as f64;

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { amount / secs } else { 0.0 }
}

/// A finite number with at most 3 decimals (JSON has no NaN or infinity).
fn json_number(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_string();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Runs `bench`.
pub fn run(args: BenchArgs) -> Result<Outcome, Failure> {
    let plans = plan(&args)?;
    let progress = std::io::stderr().is_terminal();
    if !args.json {
        let dir = args
            .dir
            .as_ref()
            .map_or("a temporary directory per mode (removed afterwards)".to_string(), |d| {
                d.display().to_string()
            });
        println!(
            "mqstore bench: {} queue(s) of topic \"{TOPIC}\", commit-log segments of {} bytes, warm-up {}, in {dir}",
            args.queues,
            args.segment_size,
            if args.no_warm_up { "off" } else { "on" }
        );
    }
    let mut reports = Vec::new();
    for plan in plans {
        let report = run_mode(plan, progress)?;
        if args.json {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", report.json())?;
            out.flush()?;
        }
        let mode = report.plan.label();
        if report.put_errors > 0 || report.put_not_ok > 0 {
            eprintln!(
                "mqstore: {mode}: {} put(s) failed and {} returned a status other than Ok (first: {})",
                report.put_errors,
                report.put_not_ok,
                report.first_error.as_deref().unwrap_or("-")
            );
        }
        for problem in &report.read_problems {
            eprintln!("mqstore: {mode}: read check: {problem}");
        }
        reports.push(report);
    }
    if !args.json {
        print_table(&reports);
    }
    let _ = std::io::stdout().flush();
    Ok(if reports.iter().any(Report::failed) {
        Outcome::FoundFailures
    } else {
        Outcome::Success
    })
}

/// Checks the arguments and resolves the per-mode defaults.
fn plan(args: &BenchArgs) -> Result<Vec<Plan>, Failure> {
    let modes: Vec<Mode> = match args.flush {
        FlushArg::Sync => vec![Mode::Sync],
        FlushArg::Async => vec![Mode::Async],
        FlushArg::Buffered => vec![Mode::Buffered],
        FlushArg::All => MODES.to_vec(),
    };
    if args.put_batch > 1 && args.in_flight > 1 {
        return Err(Failure::usage(
            "--put-batch and --in-flight do not combine: a batch is one put, waited for whole",
        ));
    }
    let record_len = u64::from(args.size) + RECORD_OVERHEAD;
    if record_len + 8 > args.segment_size {
        return Err(Failure::usage(format!(
            "--size {} does not fit a commit-log segment of {} bytes (a record needs about {record_len} bytes)",
            args.size, args.segment_size
        )));
    }
    let mut plans = Vec::new();
    let replicate: &[ReplicateArg] = match args.replicate {
        ReplicateArg::Off => &[ReplicateArg::Off],
        r => &[ReplicateArg::Off, r],
    };
    let steady: &[Option<u64>] = if args.steady {
        &[None, Some(args.budget_segments)]
    } else {
        &[None]
    };
    let runs = modes
        .into_iter()
        .flat_map(|m| replicate.iter().map(move |r| (m, *r)))
        .flat_map(|(m, r)| steady.iter().map(move |st| (m, r, *st)));
    let base = match &args.config {
        Some(path) => Some(StoreConfig::from_toml_file(path).map_err(|e| Failure::usage(e.to_string()))?),
        None => None,
    };
    for (mode, replicate, steady) in runs {
        let mut policy = mode.policy();
        if let Some(n) = args.write_buffers {
            policy = policy.with_buffers(n as usize, false);
        }
        let dir = match &args.dir {
            None => None,
            Some(root) => {
                let mut name = match replicate {
                    ReplicateArg::Off => mode.name().to_string(),
                    r => format!("{}-{}-master", mode.name(), r.name()),
                };
                if steady.is_some() {
                    name.push_str("-steady");
                }
                let dir = root.join(name);
                check_fresh(&dir)?;
                Some(dir)
            }
        };
        let mut messages = args.messages.unwrap_or(mode.default_messages());
        if let Some(budget) = steady {
            // At least four budgets' worth, so that every file is recycled again and again.
            messages = messages.max((4 * budget * args.segment_size).div_ceil(record_len));
        }
        plans.push(Plan {
            mode,
            policy,
            producers: args.producers.unwrap_or(mode.default_producers()),
            messages,
            size: args.size,
            queues: args.queues,
            segment_size: args.segment_size,
            warm_up: !args.no_warm_up,
            zero_fill: args.zero_fill,
            put_batch: args.put_batch,
            in_flight: args.in_flight,
            readers: args.readers,
            get_batch: args.get_batch,
            replicate,
            steady,
            dir,
            base: base.clone(),
        });
    }
    Ok(plans)
}

/// Refuses a directory that exists and is not empty.
fn check_fresh(dir: &Path) -> Result<(), Failure> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Failure::usage(format!(
                    "{} is not empty: bench writes a fresh store per mode; remove it or choose another --dir",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(Failure::usage(format!("{} is not a directory", dir.display())))
        }
        Err(e) => Err(Failure::usage(format!("cannot use {}: {e}", dir.display()))),
    }
}

fn progress_bar(show: bool, mode: Mode, len: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let style =
        ProgressStyle::with_template("{prefix:>8} {msg:<9} [{bar:32}] {human_pos}/{human_len} {elapsed} (eta {eta})")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len)
        .with_style(style)
        .with_prefix(mode.name())
        .with_message("append")
}

/// Producer `i`'s share of `messages`: `(first sequence number, count)`.
fn share(messages: u64, producers: u32, i: u32) -> (u64, u64) {
    let (n, i) = (u64::from(producers), u64::from(i));
    let base = messages / n;
    let extra = messages % n;
    let first = i * base + i.min(extra);
    (first, base + u64::from(i < extra))
}

/// The body template: `size` bytes of lower-case letters.
fn body_template(size: u32) -> Vec<u8> {
    (0..size as usize).map(|j| b'a' + (j % 26) as u8).collect()
}

/// Writes `seq` as zero-padded decimal over the body's first digits (all of them for a body of
/// at least [`SEQ_DIGITS`] bytes, the last `size` digits for a shorter one).
fn stamp(body: &mut [u8], seq: u64) {
    let n = body.len().min(SEQ_DIGITS);
    let mut v = seq;
    for b in body[..n].iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Reads back a body's sequence number, if the body is long enough to hold all of it.
fn unstamp(body: &[u8]) -> Option<u64> {
    let digits = body.get(..SEQ_DIGITS)?;
    digits.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit()
            .then(|| acc.wrapping_mul(10).wrapping_add(u64::from(b - b'0')))
    })
}

/// What one producer thread measured.
struct ProducerResult {
    latency: Histogram<u64>,
    errors: u64,
    not_ok: u64,
    first_error: Option<String>,
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn run_mode(plan: Plan, show_progress: bool) -> Result<Report, Failure> {
    let label = plan.label();
    let name = label.as_str();
    let _temp;
    let dir = match &plan.dir {
        Some(d) => d.clone(),
        None => {
            let t = tempfile::Builder::new()
                .prefix(&format!("mqstore-bench-{name}-"))
                .tempdir()
                .map_err(|e| Failure::failed(format!("cannot create a temporary directory: {e}")))?;
            let path = t.path().to_path_buf();
            _temp = t;
            path
        }
    };
    let mut config = plan
        .base_config(&dir)
        .flush_policy(plan.policy.clone())
        .commit_log_segment_size(plan.segment_size)
        .warm_up_segments(plan.warm_up);
    if let Some(on) = plan.zero_fill {
        config = config.zero_fill_segments(on);
    }
    if let Some(budget) = plan.steady {
        // Passes every 10 ms; half the budget is the forced ratio, so that the log, the bin and
        // the segment prepared ahead stay within it.
        config = config.retention(
            RetentionConfig::default()
                .delete_when([])
                .interval(Duration::from_millis(10), Duration::ZERO)
                .disk_usage(DiskUsage::Budget(budget * plan.segment_size))
                .disk_space_clean_forcibly_ratio(0.5)
                .delete_file_batch_max(64),
        );
    }
    if let Some(role) = plan.replicate.role() {
        let listen = "127.0.0.1:0".parse().expect("an address");
        config = config
            .role(role)
            .replication(ReplicationConfig::default().listen(listen));
    }
    let store = MessageStore::open(config)
        .map_err(|e| Failure::failed(format!("{name}: cannot open a store in {}: {e}", dir.display())))?;
    let slave = match store.replication_addr() {
        Some(master) => Some(open_slave(&plan, &dir, master, name)?),
        None => None,
    };
    if let Some((slave, _)) = &slave {
        let deadline = Instant::now() + DISPATCH_WAIT;
        while store.in_sync_slaves() == 0 {
            if Instant::now() > deadline || slave.is_closed() {
                return Err(Failure::failed(format!("{name}: the slave did not connect")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // The store starts preparing its first segment at open: let it finish before the priming
    // puts need it (with zero-fill on, a put that finds it unfinished cuts the fill short).
    if !store.wait_segments_prepared(DISPATCH_WAIT) {
        return Err(Failure::failed(format!(
            "{name}: the first segment was not prepared in time"
        )));
    }

    // A running broker has an active segment and its queues: create the first segment and
    // every queue's files before timing, with one message to each queue (readers skip it), so
    // that the figures measure appends, not the store's start-up. Segments the run rolls over
    // to are created, and timed, in the run.
    for q in 0..plan.queues {
        match store.put(Message::new(TOPIC, q, body_template(plan.size))) {
            Ok(r) if r.status == PutStatus::Ok => {}
            Ok(r) => {
                return Err(Failure::failed(format!(
                    "{name}: a priming put returned {:?}",
                    r.status
                )));
            }
            Err(e) => return Err(Failure::failed(format!("{name}: a priming put failed: {e}"))),
        }
    }
    if !store.wait_dispatched(DISPATCH_WAIT) {
        return Err(Failure::failed(format!("{name}: the priming puts were not dispatched")));
    }
    // ... and, like a broker that has been running, the segment after the active one prepared
    // by the store's allocation thread (with warm-up on, the active one warmed as far ahead of
    // the writer as the store warms). Later segments are prepared, and warmed, while the run
    // writes, racing it as they would in service.
    if !store.wait_segments_prepared(DISPATCH_WAIT) {
        return Err(Failure::failed(format!(
            "{name}: the first segments were not prepared in time"
        )));
    }

    if let Some(budget) = plan.steady {
        steady_state(&store, &plan, budget).map_err(|e| Failure::failed(format!("{name}: {e}")))?;
    }

    let bar = progress_bar(show_progress, plan.mode, plan.messages);

    // Append phase.
    let template = body_template(plan.size);
    let barrier = Barrier::new(plan.producers as usize + 1);
    let (append_elapsed, results, hiccups) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..plan.producers)
            .map(|i| {
                let (store, barrier, template, bar, plan) = (&store, &barrier, &template, &bar, &plan);
                s.spawn(move || produce(store, plan, i, template, barrier, bar))
            })
            .collect();
        let meter = hiccup::HiccupMeter::start();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<ProducerResult> = handles
            .into_iter()
            .map(|h| h.join().expect("a producer thread panicked"))
            .collect();
        let elapsed = start.elapsed();
        (elapsed, results, meter.map(hiccup::HiccupMeter::stop))
    });
    let hiccups = hiccups.map_err(|e| Failure::failed(format!("{name}: cannot start the hiccup meter: {e}")))?;
    let recycled = store.stats().segments_recycled;
    // The store started empty: every segment below its first one now was deleted.
    let segments_deleted = store.min_commit_log_offset() / plan.segment_size;
    let mut latency = new_histogram();
    let (mut put_errors, mut put_not_ok, mut first_error) = (0, 0, None);
    for r in results {
        latency.add(&r.latency).expect("histograms with the same bounds add");
        put_errors += r.errors;
        put_not_ok += r.not_ok;
        first_error = first_error.or(r.first_error);
    }

    // The slave catches up.
    let lag_start = Instant::now();
    let mut read_problems = Vec::new();
    if let Some((slave, _)) = &slave {
        bar.set_message("replicate");
        let end = store.max_commit_log_offset();
        let deadline = lag_start + DISPATCH_WAIT;
        while slave.max_commit_log_offset() < end && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if slave.max_commit_log_offset() != end {
            read_problems.push(format!(
                "the slave holds {} of {end} commit-log bytes after {} s",
                slave.max_commit_log_offset(),
                DISPATCH_WAIT.as_secs()
            ));
        }
    }
    let replica_lag = lag_start.elapsed();

    // Dispatch.
    bar.set_message("dispatch");
    let dispatch_start = Instant::now();
    if !store.wait_dispatched(DISPATCH_WAIT) {
        read_problems.push(format!(
            "the dispatcher did not catch up within {} s (dispatched to {} of {})",
            DISPATCH_WAIT.as_secs(),
            store.dispatched_offset(),
            store.max_commit_log_offset()
        ));
    }
    let dispatch_elapsed = dispatch_start.elapsed();
    // The allocation thread may still be warming the segment after the last one written, and
    // the async flusher writing back the last second of appends: let both finish, so that the
    // read phase measures reads. Writeback of pages the store has mapped costs every core running
    // a reader a TLB shoot-down per batch of pages; overlapping it, the read rate varied between
    // 3.5 and 8 M msg/s from run to run.
    if !store.wait_segments_prepared(DISPATCH_WAIT) {
        read_problems.push("the allocation thread did not settle before the read phase".to_string());
    }
    if let Err(e) = store.flush() {
        read_problems.push(format!("flush before the read phase failed: {e}"));
    }
    // A steady run's last pass, now: nothing is deleted under the readers after it.
    if plan.steady.is_some()
        && let Err(e) = store.delete_expired_now()
    {
        read_problems.push(format!("the retention pass before the read phase failed: {e}"));
    }

    // Read phase.
    bar.set_message("read");
    bar.set_position(0);
    bar.set_length(plan.messages - put_errors);
    bar.reset_elapsed();
    let readers = plan
        .readers
        .map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        )
        .min(plan.queues as usize);
    let read_start = Instant::now();
    let tallies: Vec<ReadTally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let (store, bar, plan) = (&store, &bar, &plan);
                s.spawn(move || read_queues(store, plan, r, readers, bar))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a reader thread panicked"))
            .collect()
    });
    let read_elapsed = read_start.elapsed();
    let mut total = ReadTally::default();
    for t in tallies {
        total.messages += t.messages;
        total.body_bytes += t.body_bytes;
        total.seq_sum = total.seq_sum.wrapping_add(t.seq_sum);
        total.problems.extend(t.problems);
    }
    read_problems.extend(total.problems);
    let appended = plan.messages - put_errors;
    if plan.steady.is_some() {
        // Retention took most of what was written: what is left must read back whole, from
        // each queue's new minimum (checked by the readers); the sums cover the full run only.
    } else if total.messages != appended {
        read_problems.push(format!("read {} message(s), {appended} were appended", total.messages));
    }
    let expected_bytes = appended * u64::from(plan.size);
    if plan.steady.is_none() && total.body_bytes != expected_bytes {
        read_problems.push(format!(
            "read {} body bytes, expected {expected_bytes}",
            total.body_bytes
        ));
    }
    if put_errors == 0 && plan.size as usize >= SEQ_DIGITS && plan.steady.is_none() {
        // Every sequence number 0..messages exactly once (checked by their sum).
        let n = plan.messages;
        let expected = if n.is_multiple_of(2) {
            (n / 2).wrapping_mul(n.wrapping_sub(1))
        } else {
            n.wrapping_mul((n - 1) / 2)
        };
        if total.seq_sum != expected {
            read_problems.push("the bodies read back do not carry the sequence numbers written".to_string());
        }
    }

    bar.set_message("close");
    if let Some((slave, _)) = &slave
        && let Err(e) = slave.close()
    {
        read_problems.push(format!("closing the slave failed: {e}"));
    }
    drop(slave);
    let close_start = Instant::now();
    let closed = store.close();
    let close_elapsed = close_start.elapsed();
    bar.finish_and_clear();
    if let Err(e) = closed {
        read_problems.push(format!("closing the store failed: {e}"));
    }
    drop(store);

    Ok(Report {
        plan,
        append_elapsed,
        latency,
        put_errors,
        put_not_ok,
        first_error,
        dispatch_elapsed,
        read_elapsed,
        readers,
        read_messages: total.messages,
        read_problems,
        close_elapsed,
        replica_lag,
        recycled,
        segments_deleted,
        hiccups,
    })
}

/// Brings a steady run's store to where a broker that has run for days is: twice the budget
/// written and deleted, so that the log's files, the one prepared ahead and the recycle bin's are
/// all recycled ones. Untimed; each body carries its queue's number as its sequence number,
/// which is all the read check asks of it.
fn steady_state(store: &MessageStore, plan: &Plan, budget: u64) -> Result<(), String> {
    let record_len = u64::from(plan.size) + RECORD_OVERHEAD;
    let n = (2 * budget * plan.segment_size).div_ceil(record_len);
    let mut bodies: Vec<Vec<u8>> = (0..plan.queues)
        .map(|q| {
            let mut b = body_template(plan.size);
            stamp(&mut b, u64::from(q));
            b
        })
        .collect();
    for i in 0..n {
        let q = (i % u64::from(plan.queues)) as u32;
        let body = std::mem::take(&mut bodies[q as usize]);
        let m = Message::new(TOPIC, q, body.clone());
        bodies[q as usize] = body;
        store.put(m).map_err(|e| format!("filling the budget: {e}"))?;
    }
    store.flush().map_err(|e| format!("flush after filling: {e}"))?;
    if !store.wait_dispatched(DISPATCH_WAIT) {
        return Err("the filling puts were not dispatched".into());
    }
    store
        .delete_expired_now()
        .map_err(|e| format!("retention after filling: {e}"))?;
    if !store.wait_segments_prepared(DISPATCH_WAIT) {
        return Err("the next segment was not prepared after filling".into());
    }
    Ok(())
}

/// Opens the slave of a replicated run beside the master's store (in `MASTER_DIR-slave`, or a
/// temporary directory when the master's is one), with the same flush policy.
fn open_slave(
    plan: &Plan,
    master_dir: &Path,
    master: std::net::SocketAddr,
    name: &str,
) -> Result<(MessageStore, Option<tempfile::TempDir>), Failure> {
    let (dir, temp) = if master_dir.starts_with(std::env::temp_dir()) {
        let t = tempfile::Builder::new()
            .prefix(&format!("mqstore-bench-{name}-slave-"))
            .tempdir()
            .map_err(|e| Failure::failed(format!("cannot create a temporary directory: {e}")))?;
        (t.path().to_path_buf(), Some(t))
    } else {
        let mut d = master_dir.as_os_str().to_owned();
        d.push("-slave");
        let d = PathBuf::from(d);
        check_fresh(&d)?;
        (d, None)
    };
    let mut config = plan
        .base_config(&dir)
        .flush_policy(plan.policy.clone())
        .commit_log_segment_size(plan.segment_size)
        .warm_up_segments(plan.warm_up)
        .role(Role::Slave { master });
    if let Some(on) = plan.zero_fill {
        config = config.zero_fill_segments(on);
    }
    let slave = MessageStore::open(config)
        .map_err(|e| Failure::failed(format!("{name}: cannot open the slave in {}: {e}", dir.display())))?;
    Ok((slave, temp))
}

/// One producer thread: puts its share, timing each put.
fn produce(
    store: &MessageStore,
    plan: &Plan,
    i: u32,
    template: &[u8],
    barrier: &Barrier,
    bar: &ProgressBar,
) -> ProducerResult {
    let (first, count) = share(plan.messages, plan.producers, i);
    let mut result = ProducerResult {
        latency: new_histogram(),
        errors: 0,
        not_ok: 0,
        first_error: None,
    };
    if plan.put_batch == 1 && plan.in_flight == 1 {
        barrier.wait();
        produce_serially(store, plan, first..first + count, template, bar, &mut result);
        return result;
    }
    let queues = u64::from(plan.queues);
    let in_flight_max = plan.in_flight as usize;
    let mut in_flight: VecDeque<(Tick, PendingPut)> = VecDeque::with_capacity(in_flight_max);
    let mut batch = Vec::with_capacity(plan.put_batch as usize);
    barrier.wait();
    let mut unreported = 0;
    let mut seq = first;
    while seq < first + count {
        let n = u64::from(plan.put_batch).min(first + count - seq);
        for s in seq..seq + n {
            let mut body = template.to_vec();
            stamp(&mut body, s);
            batch.push(Message::new(TOPIC, (s % queues) as u32, body));
        }
        seq += n;
        let start = Tick::now();
        if n > 1 {
            let put = store.put_batch(std::mem::take(&mut batch));
            // Every message of a batch waited as long as the batch did.
            result.latency.saturating_record_n(nanos_since(start), n);
            match put {
                Ok(results) => results.iter().for_each(|r| result.note(r.status)),
                Err(e) => result.fail(n, &e),
            }
        } else {
            let msg = batch.pop().expect("one message");
            match store.put_async(msg) {
                Ok(pending) => in_flight.push_back((start, pending)),
                Err(e) => result.fail(1, &e),
            }
            if in_flight.len() >= in_flight_max {
                let (started, pending) = in_flight.pop_front().expect("a put in flight");
                result.complete(started, pending);
            }
        }
        unreported += n;
        if unreported >= PROGRESS_STEP {
            bar.inc(unreported);
            unreported = 0;
        }
    }
    for (started, pending) in in_flight {
        result.complete(started, pending);
    }
    bar.inc(unreported);
    result
}

/// The plain closed loop, a put at a time. The producer refills one message for every put
/// (`put_ref`), as the copy-and-CRC ceiling reuses one body, and reads the clock once per put:
/// a put's latency runs from the previous put's return to its own, so it also counts the
/// loop's few ns between the two (stamping the body, recording), never less than the put took.
fn produce_serially(
    store: &MessageStore,
    plan: &Plan,
    seqs: std::ops::Range<u64>,
    template: &[u8],
    bar: &ProgressBar,
    result: &mut ProducerResult,
) {
    let queues = u64::from(plan.queues);
    let mut msg = Message::new(TOPIC, 0, template.to_vec());
    let mut unreported = 0;
    let mut last = Tick::now();
    for s in seqs {
        stamp(msg.body_mut(), s);
        msg.set_queue_id((s % queues) as u32);
        let put = store.put_ref(&msg);
        let now = Tick::now();
        result
            .latency
            .saturating_record(u64::try_from((now - last).as_nanos()).unwrap_or(u64::MAX));
        last = now;
        match put {
            Ok(r) => result.note(r.status),
            Err(e) => result.fail(1, &e),
        }
        unreported += 1;
        if unreported == PROGRESS_STEP {
            bar.inc(unreported);
            unreported = 0;
        }
    }
    bar.inc(unreported);
}

fn nanos_since(start: Tick) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl ProducerResult {
    fn note(&mut self, status: PutStatus) {
        if status != PutStatus::Ok {
            self.not_ok += 1;
            self.first_error
                .get_or_insert_with(|| format!("put returned {status:?}"));
        }
    }

    fn fail(&mut self, messages: u64, e: &mqstore::Error) {
        self.errors += messages;
        self.first_error.get_or_insert_with(|| format!("put failed: {e}"));
    }

    /// Waits for a put in flight; its latency runs from its submission to its outcome, as the
    /// producer learns it (in submission order, which is the order group commit completes in).
    fn complete(&mut self, started: Tick, pending: PendingPut) {
        let r = pending.wait();
        self.latency.saturating_record(nanos_since(started));
        self.note(r.status);
    }
}

/// What one reader thread read.
#[derive(Debug, Default)]
struct ReadTally {
    messages: u64,
    body_bytes: u64,
    seq_sum: u64,
    problems: Vec<String>,
}

/// One reader thread: reads queues `r, r + readers, ...` from offset 0 to their end.
fn read_queues(store: &MessageStore, plan: &Plan, r: usize, readers: usize, bar: &ProgressBar) -> ReadTally {
    let mut tally = ReadTally::default();
    let queues = u64::from(plan.queues);
    for q in (r..plan.queues as usize).step_by(readers) {
        let q = q as u32;
        // In a steady run, retention took the queue's start.
        let mut offset = PRIMED.max(store.min_offset(TOPIC, q));
        loop {
            let g = match store.get(TOPIC, q, offset, plan.get_batch) {
                Ok(g) => g,
                Err(e) => {
                    tally.problems.push(format!("get {TOPIC}/{q} at {offset} failed: {e}"));
                    break;
                }
            };
            match g.status {
                GetStatus::Found => {}
                GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue if offset == g.max_offset => break,
                status => {
                    tally.problems.push(format!(
                        "get {TOPIC}/{q} at {offset} returned {status:?} (queue holds {}..{})",
                        g.min_offset, g.max_offset
                    ));
                    break;
                }
            }
            for m in &g.messages {
                let body = m.body();
                tally.messages += 1;
                tally.body_bytes += body.len() as u64;
                if let Some(seq) = unstamp(body) {
                    tally.seq_sum = tally.seq_sum.wrapping_add(seq);
                    if seq % queues != u64::from(q) {
                        tally.problems.push(format!(
                            "{TOPIC}/{q} offset {}: message #{seq} belongs to another queue",
                            m.queue_offset()
                        ));
                    }
                }
            }
            bar.inc(g.messages.len() as u64);
            if g.next_offset <= offset {
                tally
                    .problems
                    .push(format!("get {TOPIC}/{q} at {offset} did not advance"));
                break;
            }
            offset = g.next_offset;
        }
    }
    tally
}

/// Formats a rate with thousands separators.
fn grouped(v: f64) -> String {
    let n = v.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn us(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn print_table(reports: &[Report]) {
    let mut rows = vec![
        [
            "mode",
            "producers",
            "messages",
            "size",
            "append msg/s",
            "MiB/s",
            "p50 µs",
            "p99 µs",
            "p999 µs",
            "max µs",
            "hiccup µs",
            "read msg/s",
            "recycled",
            "errors",
        ]
        .map(String::from),
    ];
    for r in reports {
        let p = &r.plan;
        rows.push([
            p.label(),
            p.producers.to_string(),
            p.messages.to_string(),
            p.size.to_string(),
            grouped(r.append_msgs_per_s()),
            format!("{:.1}", r.append_mib_per_s()),
            us(r.quantile_us(0.50)),
            us(r.quantile_us(0.99)),
            us(r.quantile_us(0.999)),
            us(r.max_us()),
            us(r.hiccup_max_us()),
            grouped(r.read_msgs_per_s()),
            r.recycled.to_string(),
            (r.put_errors + r.put_not_ok + r.read_problems.len() as u64).to_string(),
        ]);
    }
    let mut out = std::io::stdout().lock();
    let right = [
        false, true, true, true, true, true, true, true, true, true, true, true, true, true,
    ];
    let _ = write!(out, "{}", mqstore::inspect::table(&rows, "", &right));
    let _ = writeln!(
        out,
        "(MiB/s counts message bodies; latency is per put, as the producer sees it; hiccup: the latest an idle thread woke from a 1 ms sleep during the appends, the machine's share of the worst put; read: {} thread(s) paging each queue with get(.., {}))",
        reports.first().map_or(1, |r| r.readers),
        reports.first().map_or(GET_BATCH, |r| r.plan.get_batch)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_message_once() {
        for (messages, producers) in [(10, 3), (2000, 2), (5, 8), (1, 1)] {
            let mut next = 0;
            for i in 0..producers {
                let (first, count) = share(messages, producers, i);
                assert_eq!(first, next);
                next += count;
            }
            assert_eq!(next, messages);
        }
    }

    #[test]
    fn sequence_numbers_round_trip() {
        let mut body = body_template(64);
        stamp(&mut body, 1234567);
        assert_eq!(unstamp(&body), Some(1234567));
        assert_eq!(&body[..20], b"00000000000001234567");
        let mut short = body_template(4);
        stamp(&mut short, 1234567);
        assert_eq!(&short, b"4567");
        assert_eq!(unstamp(&short), None);
    }

    #[test]
    fn json_numbers_are_plain() {
        assert_eq!(json_number(1.0), "1");
        assert_eq!(json_number(0.0), "0");
        assert_eq!(json_number(12.3456), "12.346");
        assert_eq!(json_number(f64::NAN), "0");
        assert_eq!(json_number(f64::INFINITY), "0");
    }
}

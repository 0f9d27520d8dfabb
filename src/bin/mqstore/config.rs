//! `mqstore config`: the store's configuration file. `--default` writes the full default file;
//! `--check FILE` reads one as `StoreConfig::from_toml_file` does and prints what it sets.

use std::io::Write;
use std::path::PathBuf;

use clap::{ArgGroup, Args};
use mqstore::StoreConfig;

use crate::{Failure, Outcome};

/// Arguments of `mqstore config`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["default", "check"])))]
pub struct ConfigArgs {
    /// Print the full default configuration: every key, its default and a comment.
    #[arg(long)]
    pub default: bool,
    /// The store directory the default file names [default: /var/lib/mqstore].
    #[arg(long, requires = "default")]
    pub dir: Option<PathBuf>,
    /// Read FILE and print every setting it makes (defaults included), or why it is refused.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

/// Runs `config`: exit 0, or 1 when the file checked is refused.
pub fn run(args: ConfigArgs) -> Result<Outcome, Failure> {
    let mut out = std::io::stdout().lock();
    if let Some(path) = args.check {
        let config = StoreConfig::from_toml_file(&path).map_err(|e| Failure::failed(e.to_string()))?;
        let text = config.to_toml().map_err(|e| Failure::failed(e.to_string()))?;
        write!(out, "{text}")?;
    } else {
        let dir = args.dir.unwrap_or_else(|| PathBuf::from("/var/lib/mqstore"));
        write!(out, "{}", StoreConfig::default_toml(dir))?;
    }
    Ok(Outcome::Success)
}

//! `mqstore-broker --config broker.toml`: serves until Ctrl-C or SIGTERM, then closes the store
//! cleanly.

use std::process::ExitCode;

use mqstore_broker::{Broker, BrokerConfig};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag, path] if flag == "--config" || flag == "-c" => path.clone(),
        _ => {
            eprintln!("usage: mqstore-broker --config broker.toml");
            return ExitCode::from(2);
        }
    };
    let config = match BrokerConfig::from_toml_file(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mqstore-broker: {e}");
            return ExitCode::from(2);
        }
    };
    let broker = match Broker::start(config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mqstore-broker: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("mqstore-broker: serving on {} (name server and broker)", broker.addr());
    wait_for_signal();
    eprintln!("mqstore-broker: stopping");
    match broker.stop() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqstore-broker: closing the store: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a signal runtime");
    runtime.block_on(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}

//! Thin binary: parse arguments, install JSON logging, run the command, map to an exit code.

use std::process::ExitCode;

use clap::Parser;
use plasma_agent::command::{self, Command, Env};
use plasma_agent::logging::{self, LogContext};
use plasma_agent::notify::Notifier;

const EXIT_CODES: &str = "\
Exit codes:
  0   done: bootstrapped, joined, healthy, or already joined (marker present)
  2   bad configuration or arguments (the log names the field); fix before retrying
  75  temporary failure (service not healthy in time, cluster unreachable); Restart=on-failure";

#[derive(Debug, Parser)]
#[command(name = "plasma-agent", version, about = "PlasmaCloud first-boot agent", after_help = EXIT_CODES)]
struct Cli {
    /// Log DEBUG lines too.
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = LogContext::new();
    let level = if cli.verbose {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let sub = logging::subscriber(log.clone(), Box::new(std::io::stdout()), level);
    if tracing::subscriber::set_global_default(sub).is_err() {
        eprintln!("plasma-agent: cannot install logging");
    }
    // One thread is plenty for a handful of sequential requests and keeps RSS small.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start runtime: {e}");
            return ExitCode::from(plasma_agent::exit::EXIT_TEMPFAIL);
        }
    };
    let env = Env {
        log,
        notify: Notifier::from_env(),
        installation: plasma_agent::installation::read(std::path::Path::new("/etc/machine-id")),
    };
    let result = rt.block_on(command::run(&cli.command, &env));
    plasma_agent::exit::exit_code(&result)
}

use std::process::ExitCode;

use clap::Parser;
use plasmagen::command::{self, Cli, Outcome};
use plasmagen::error::{EXIT_CHANGES, EXIT_OK};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
    match command::run(cli) {
        Ok(Outcome::Ok) => ExitCode::from(EXIT_OK),
        Ok(Outcome::ChangesPending | Outcome::Failed) => ExitCode::from(EXIT_CHANGES),
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("plasmagen: {msg}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

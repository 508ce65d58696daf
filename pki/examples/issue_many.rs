//! Benchmark helper for bench/pki.sh: `store::apply` for N nodes into a fresh directory.
//!
//! Usage: issue_many [NODES] [OUT_DIR]   (defaults: 1000, a temporary directory)
//! Prints one line: `nodes=N elapsed_s=S files=F`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use plasma_pki::store::{self, NodeIdentity, StoreInput};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let nodes: u32 = match args.next().map(|a| a.parse()) {
        None => 1000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("issue_many: NODES must be a number: {e}");
            return ExitCode::from(2);
        }
    };
    let tmp;
    let out: PathBuf = match args.next() {
        Some(dir) => dir.into(),
        None => {
            tmp = match tempfile::tempdir() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("issue_many: {e}");
                    return ExitCode::FAILURE;
                }
            };
            tmp.path().join("secrets")
        }
    };
    let input = StoreInput::new(
        "bench",
        (0..nodes)
            .map(|i| NodeIdentity {
                hostname: format!("node{i:04}"),
                fqdn: format!("node{i:04}.bench.example"),
                ips: vec![
                    IpAddr::V4(Ipv4Addr::new(10, 200, (i / 250) as u8, (i % 250) as u8 + 1)),
                    IpAddr::V4(Ipv4Addr::new(10, 100, (i / 250) as u8, (i % 250) as u8 + 1)),
                ],
            })
            .collect(),
        IpAddr::V4(Ipv4Addr::new(10, 100, 0, 1)),
    );
    let start = Instant::now();
    let actions = match store::apply(&out, &input, time::OffsetDateTime::now_utc()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("issue_many: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "nodes={nodes} elapsed_s={elapsed:.3} actions={}",
        actions.len()
    );
    ExitCode::SUCCESS
}

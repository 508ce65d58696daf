//! `plasmagen generate <INVENTORY> --out <DIR>`: render the flake and the secrets.

use std::fs;
use std::path::{Component, Path, PathBuf};

use plasma_pki::store::SecretAction;
use serde_json::json;

use super::{Outcome, print_warnings};
use crate::error::Error;
use crate::{inventory, output, render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Inventory file (TOML, or JSON when it ends in .json).
    pub inventory: PathBuf,
    /// Output directory: <OUT>/flake (commit it) and <OUT>/secrets (never commit it).
    #[arg(long)]
    pub out: PathBuf,
    /// Secrets directory (default <OUT>/secrets). Refused inside the flake directory.
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// Print what would be created, changed (with a diff) or removed; write nothing.
    /// Exits 1 when something would change, 0 when nothing would.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON on stdout.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Leave the secrets directory alone (no CA, keys or certificates).
    #[arg(long)]
    pub skip_certs: bool,
    /// Re-issue a node certificate (same key) when it expires within this many days.
    #[arg(long, default_value_t = plasma_pki::store::DEFAULT_RENEW_BEFORE_DAYS, value_name = "DAYS")]
    pub renew_before: u32,
    /// Delete the secrets of nodes that are no longer in the inventory (kept by default).
    #[arg(long)]
    pub prune_secrets: bool,
}

impl Args {
    /// `generate INVENTORY --out OUT --skip-certs` with every other flag at its default: the
    /// flake alone, for callers that drive generation in process.
    pub fn flake_only(inventory: PathBuf, out: PathBuf) -> Args {
        Args {
            inventory,
            out,
            secrets: None,
            dry_run: false,
            json: false,
            skip_certs: true,
            renew_before: plasma_pki::store::DEFAULT_RENEW_BEFORE_DAYS,
            prune_secrets: false,
        }
    }
}

/// Absolute, with `.` and `..` resolved lexically (the directories may not exist yet).
pub fn absolute(path: &Path) -> PathBuf {
    let base = if path.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_default()
    };
    let mut out = PathBuf::new();
    for c in base.join(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub struct Layout {
    pub out: PathBuf,
    pub flake: PathBuf,
    pub secrets: PathBuf,
}

pub fn layout(out: &Path, secrets: Option<&Path>) -> Result<Layout, Error> {
    let flake = out.join("flake");
    let secrets = secrets.map_or_else(|| out.join("secrets"), Path::to_path_buf);
    let (af, asec) = (absolute(&flake), absolute(&secrets));
    if asec.starts_with(&af) || af.starts_with(&asec) {
        return Err(Error::Usage(format!(
            "refusing secrets directory {} inside (or containing) the flake directory {}: anything under the flake can be copied into the world-readable Nix store",
            secrets.display(),
            flake.display()
        )));
    }
    Ok(Layout {
        out: out.to_path_buf(),
        flake,
        secrets,
    })
}

pub fn run(args: &Args) -> Result<Outcome, Error> {
    let loaded = match inventory::load(&args.inventory) {
        Err(inventory::LoadError::Invalid(diags)) if args.json => {
            // Machine-readable callers get the problems on stdout, in check --json's shape.
            super::check::print_json(&args.inventory, false, &diags, 0)?;
            return Err(Error::Invalid(Vec::new()));
        }
        other => other?,
    };
    print_warnings(&loaded.warnings);
    let inv = &loaded.inventory;
    let layout = layout(&args.out, args.secrets.as_deref())?;
    let store_input = crate::pki::store_input(inv, args.renew_before, args.prune_secrets);
    let now = time::OffsetDateTime::now_utc();

    if args.dry_run {
        let secrets: Vec<SecretAction> = if args.skip_certs {
            Vec::new()
        } else {
            plasma_pki::store::plan(&layout.secrets, &store_input, now)?
        };
        let (luks, host_keys, ssh_keys) = if args.skip_certs {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            (
                crate::luks::missing(inv, &layout.secrets),
                crate::luks::missing_host_keys(inv, &layout.secrets),
                crate::hostkeys::missing(inv, &layout.secrets),
            )
        };
        let rendered = render_all(inv, &layout)?;
        let mut plan = output::plan(&layout.flake, &rendered)?;
        if secrets.contains(&SecretAction::CreateCa) {
            // The flake's public copy of the CA certificate appears once the CA exists.
            plan.create.push(CA_COPY.into());
        }
        let secret_changes = secrets.iter().any(SecretAction::changes_files)
            || !luks.is_empty()
            || !host_keys.is_empty()
            || !ssh_keys.is_empty();
        let changes = !plan.is_empty() || secret_changes;
        if args.json {
            let doc = json!({ "changes": changes, "flake": plan, "secrets": secrets, "luks_passphrases": luks, "initrd_host_keys": host_keys, "ssh_host_keys": ssh_keys });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?
            );
        } else {
            print!("{}", plan.describe(&layout.flake));
            for a in &secrets {
                println!("secrets: {a}");
            }
            for host in &luks {
                println!("secrets: new LUKS passphrase for {host}");
            }
            for host in &host_keys {
                println!("secrets: new initrd SSH host key for {host}");
            }
            for host in &ssh_keys {
                println!("secrets: new SSH host key for {host}");
            }
            if !changes {
                println!("nothing to do: {} files up to date", plan.unchanged);
            }
        }
        return Ok(if changes {
            Outcome::ChangesPending
        } else {
            Outcome::Ok
        });
    }

    fs::create_dir_all(&layout.out).map_err(|source| Error::Io {
        path: layout.out.clone(),
        source,
    })?;
    // One generate at a time per output directory; the second waits.
    let lock_path = layout.out.join(".plasmagen.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| Error::Io {
            path: lock_path.clone(),
            source,
        })?;
    lock.lock().map_err(|source| Error::Io {
        path: lock_path.clone(),
        source,
    })?;

    // Secrets first: the flake carries the public CA certificate.
    output::ensure_private_dir(&layout.secrets).map_err(|source| Error::Io {
        path: layout.secrets.clone(),
        source,
    })?;
    if !args.skip_certs {
        for action in plasma_pki::store::apply(&layout.secrets, &store_input, now)? {
            eprintln!("secrets: {action}");
        }
        for host in crate::luks::ensure(inv, &layout.secrets)? {
            eprintln!(
                "secrets: new LUKS passphrase for {host} ({})",
                crate::luks::key_path(&layout.secrets, &host).display()
            );
        }
        for host in crate::luks::ensure_host_keys(inv, &layout.secrets)? {
            eprintln!(
                "secrets: new initrd SSH host key for {host} ({})",
                crate::luks::initrd_host_pub_path(&layout.secrets, &host).display()
            );
        }
        for host in crate::hostkeys::ensure(inv, &layout.secrets)? {
            eprintln!(
                "secrets: new SSH host key for {host} ({})",
                crate::hostkeys::public_path(&layout.secrets, &host).display()
            );
        }
    }
    let rendered = render_all(inv, &layout)?;
    let plan = output::plan(&layout.flake, &rendered)?;
    output::apply(&layout.flake, &plan)?;
    eprintln!(
        "{}: {} created, {} changed, {} removed, {} unchanged",
        layout.flake.display(),
        plan.create.len(),
        plan.change.len(),
        plan.remove.len(),
        plan.unchanged
    );
    for report in crate::hwfiles::untracked_reports(&layout.flake) {
        eprintln!(
            "warning: {}: git does not track it, so Nix does not see it and the node evaluates without it; run `git -C {} add {}`",
            layout.flake.join(&report).display(),
            layout.flake.display(),
            report.display()
        );
    }
    Ok(Outcome::Ok)
}

/// Where the flake keeps its copy of the CA certificate (public: netboot images verify the
/// collector with it).
pub const CA_COPY: &str = "pki/ca-cert.pem";

/// Render the flake, add the CA certificate when there is one, settle DNS serials.
fn render_all(inv: &inventory::Inventory, layout: &Layout) -> Result<render::Rendered, Error> {
    let mut rendered = render::render_flake(inv)?;
    let ca = plasma_pki::store::Layout::new(&layout.secrets).ca_cert();
    match fs::read(&ca) {
        Ok(pem) => {
            // Only ever the certificate: refuse to copy anything holding a private key.
            if String::from_utf8_lossy(&pem).contains("PRIVATE KEY") {
                return Err(Error::Usage(format!(
                    "{}: contains a private key; refusing to copy it into the flake",
                    ca.display()
                )));
            }
            rendered.files.insert(CA_COPY.into(), pem);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::Io { path: ca, source }),
    }
    // SOURCE_DATE_EPOCH pins the date for reproducible output (golden tests, packaging).
    let today = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc)
        .date();
    let yyyymmdd = today.year() as u32 * 10_000
        + u32::from(u8::from(today.month())) * 100
        + u32::from(today.day());
    render::dns::settle_serials(&mut rendered, &layout.flake, yyyymmdd);
    Ok(rendered)
}

//! Renderers: validated inventory → file contents (relative path → bytes). Pure functions;
//! writing is [`crate::output`]'s job.

pub mod boot;
pub mod dhcp;
pub mod dns;
pub mod firewall;
pub mod flake;
pub mod network;
pub mod nix;
pub mod node;
pub mod pxe;
pub mod scripts;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::inventory::Inventory;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template produced invalid Nix: a bug in plasmagen, never the operator's fault.
    #[error("internal error: template {template} rendered invalid Nix: {errors}")]
    NixParse { template: String, errors: String },
    #[error("internal error: template {template} failed: {source}")]
    Template {
        template: String,
        #[source]
        source: askama::Error,
    },
    #[error("internal error: cannot serialise {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl From<plasma_inventory::ipxe::TemplateError> for RenderError {
    fn from(e: plasma_inventory::ipxe::TemplateError) -> Self {
        RenderError::Template {
            template: e.template.to_string(),
            source: e.source,
        }
    }
}

/// Everything `generate` writes into the flake directory, keyed by relative path.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rendered {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Paths among `files` written with mode 0755 (the operator scripts).
    pub executable: BTreeSet<PathBuf>,
}

impl Rendered {
    /// Text files end with a newline (askama drops the template's last one).
    fn add(&mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) {
        let mut bytes = contents.into();
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        self.files.insert(path.into(), bytes);
    }

    /// A text file written with the executable bit.
    fn add_executable(&mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) {
        let path = path.into();
        self.executable.insert(path.clone());
        self.add(path, contents);
    }

    /// A `.nix` file: parsed with rnix before it is accepted.
    fn add_nix(
        &mut self,
        path: impl Into<PathBuf>,
        template: &str,
        text: String,
    ) -> Result<(), RenderError> {
        nix::check_parses(template, &text)?;
        self.add(path, text);
        Ok(())
    }
}

pub(crate) fn askama_err(template: &str) -> impl FnOnce(askama::Error) -> RenderError + '_ {
    move |source| RenderError::Template {
        template: template.to_string(),
        source,
    }
}

/// Render the whole flake directory.
pub fn render_flake(inv: &Inventory) -> Result<Rendered, RenderError> {
    let mut out = Rendered::default();
    flake::render(inv, &mut out)?;
    firewall::render(inv, &mut out)?;
    dhcp::render(inv, &mut out)?;
    dns::render(inv, &mut out)?;
    pxe::render(inv, &mut out)?;
    scripts::render(inv, &mut out)?;
    // Nodes are independent: render them on both cores.
    let chunks: Vec<&[crate::inventory::Node]> = inv
        .nodes
        .chunks(inv.nodes.len().div_ceil(2).max(1))
        .collect();
    let results: Vec<Result<Rendered, RenderError>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut part = Rendered::default();
                    for n in *chunk {
                        node::render(inv, n, &mut part)?;
                    }
                    Ok(part)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("render thread panicked"))
            .collect()
    });
    for r in results {
        out.files.extend(r?.files);
    }
    Ok(out)
}

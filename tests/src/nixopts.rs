//! Options our NixOS modules declare, and options a Nix file sets, both read with rnix.
//!
//! Paths are dotted (`services.centra-pxe-server.dhcp.range.start`). Sub-options of an
//! `attrsOf (submodule ...)` option use the segment `<name>`, of a `listOf (submodule ...)`
//! option `*` (as in the NixOS manual). Names are joined with `.` unquoted, so a key that itself
//! contains a dot (an IP address) shows up as several segments in [`assigned_options`]; use
//! [`assigned_option_paths`] and [`is_declared`] for exact matching.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rnix::ast::{self, HasEntry};
use rnix::{SyntaxKind, SyntaxNode};
use rowan::ast::AstNode;

/// Functions whose application declares an option.
const OPTION_FNS: [&str; 3] = ["mkOption", "mkEnableOption", "mkPackageOption"];
/// Functions that wrap a configuration value without changing where it is set.
const WRAPPER_FNS: [&str; 5] = ["mkIf", "mkMerge", "mkDefault", "mkForce", "mkOverride"];

#[derive(Debug)]
pub enum NixOptsError {
    Read {
        path: String,
        source: std::io::Error,
    },
    Parse {
        path: String,
        errors: String,
    },
}

impl std::fmt::Display for NixOptsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read { path, source } => write!(f, "reading {path}: {source}"),
            Self::Parse { path, errors } => write!(f, "{path} does not parse: {errors}"),
        }
    }
}

impl std::error::Error for NixOptsError {}

/// Dotted paths of every option the module file declares. Panics with the reason when the file
/// cannot be read or parsed (a test fixture: failing loudly is the point).
pub fn declared_options(path: impl AsRef<Path>) -> BTreeSet<String> {
    let path = path.as_ref();
    try_declared_options(path).unwrap_or_else(|e| panic!("{e}"))
}

pub fn try_declared_options(path: &Path) -> Result<BTreeSet<String>, NixOptsError> {
    Ok(declared_option_paths(&parse_file(path)?)
        .into_iter()
        .map(|p| p.join("."))
        .collect())
}

/// Dotted paths of every leaf value a Nix file assigns under `prefix` (e.g.
/// `services.centra-pxe-server`), wherever in the file the module attrset sits (inside a
/// flake's `modules = [ ... ]` list, a let binding, ...).
pub fn assigned_options(path: impl AsRef<Path>, prefix: &str) -> BTreeSet<String> {
    let path = path.as_ref();
    let root = parse_file(path).unwrap_or_else(|e| panic!("{e}"));
    assigned_option_paths(&root, prefix)
        .into_iter()
        .map(|p| p.join("."))
        .collect()
}

/// Parses Nix source text (for fixtures held in strings).
pub fn parse_text(text: &str, name: &str) -> Result<SyntaxNode, NixOptsError> {
    let parsed = rnix::Root::parse(text);
    let errors = parsed.errors();
    if !errors.is_empty() {
        return Err(NixOptsError::Parse {
            path: name.to_owned(),
            errors: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(parsed.syntax())
}

fn parse_file(path: &Path) -> Result<SyntaxNode, NixOptsError> {
    let text = std::fs::read_to_string(path).map_err(|source| NixOptsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_text(&text, &path.display().to_string())
}

/// Declared option paths as segment lists.
pub fn declared_option_paths(root: &SyntaxNode) -> BTreeSet<Vec<String>> {
    let module_root = module_attrset(root);
    let mut top = Vec::new();
    // Option declarations inside a let-bound submodule (`x = { options = { ... }; }`), by name.
    let mut submodules: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    // Declarations inside an inline `submodule { options = ...; }`: (the submodule's attrset, path).
    let mut inline: Vec<(SyntaxNode, Vec<String>)> = Vec::new();

    for node in root.descendants() {
        let Some(avp) = ast::AttrpathValue::cast(node.clone()) else {
            continue;
        };
        let Some(value) = avp.value() else { continue };
        if !head_is(&value, &OPTION_FNS) {
            continue;
        }
        let (path, stop) = climb(&avp, false);
        let under_options = path.first().map(String::as_str) == Some("options");
        match stop {
            Stop::AttrSet(set) if under_options && Some(&set) == module_root.as_ref() => {
                top.push((path[1..].to_vec(), avp));
            }
            // Declarations of an inline `submodule { options = ...; }`.
            Stop::AttrSet(set) if under_options => inline.push((set, path[1..].to_vec())),
            Stop::LetIn if path.get(1).map(String::as_str) == Some("options") => {
                submodules
                    .entry(path[0].clone())
                    .or_default()
                    .push(path[2..].to_vec());
            }
            _ => {}
        }
    }

    let mut out = BTreeSet::new();
    for (path, avp) in &top {
        out.insert(path.clone());
        let Some(type_expr) = option_type(avp) else {
            continue;
        };
        let type_text = type_expr.syntax().text().to_string();
        let wildcard = wildcard_for(&type_text);
        let mut prefix = path.clone();
        prefix.extend(wildcard.clone());
        for (name, children) in &submodules {
            if mentions_submodule(&type_text, name) {
                for child in children {
                    out.insert([prefix.clone(), child.clone()].concat());
                }
            }
        }
        for (set, child) in &inline {
            if type_expr.syntax().descendants().any(|d| &d == set) {
                out.insert([prefix.clone(), child.clone()].concat());
            }
        }
    }
    out
}

/// Leaf assignments under `prefix`, as segment lists.
pub fn assigned_option_paths(root: &SyntaxNode, prefix: &str) -> BTreeSet<Vec<String>> {
    let want: Vec<&str> = prefix.split('.').filter(|s| !s.is_empty()).collect();
    let mut out = BTreeSet::new();
    for node in root.descendants() {
        if let Some(avp) = ast::AttrpathValue::cast(node.clone()) {
            let Some(value) = avp.value() else { continue };
            if is_attrset_value(&value) {
                continue;
            }
            let (path, _) = climb(&avp, true);
            if starts_with(&path, &want) {
                out.insert(path);
            }
        } else if let Some(inherit) = ast::Inherit::cast(node.clone()) {
            let Some(set) = node.parent() else { continue };
            if set.kind() != SyntaxKind::NODE_ATTR_SET {
                continue;
            }
            let (base, _) = climb_set(&set, true);
            for attr in inherit.attrs() {
                let path = [base.clone(), vec![attr_name(&attr)]].concat();
                if starts_with(&path, &want) {
                    out.insert(path);
                }
            }
        }
    }
    out
}

/// True when `assigned` is an option in `declared` or lies inside the value of a declared
/// option that has no declared sub-options (e.g. an `attrsOf package`).
pub fn is_declared(declared: &BTreeSet<String>, assigned: &[String]) -> bool {
    let declared: Vec<Vec<&str>> = declared.iter().map(|d| d.split('.').collect()).collect();
    let matches = |d: &[&str], a: &[String]| {
        d.len() <= a.len()
            && d.iter()
                .zip(a)
                .all(|(d, a)| *d == "<name>" || *d == "*" || d == a)
    };
    declared.iter().any(|d| {
        if !matches(d, assigned) {
            return false;
        }
        if d.len() == assigned.len() {
            return true;
        }
        // A prefix only counts when nothing is declared below it.
        !declared
            .iter()
            .any(|other| other.len() > d.len() && other[..d.len()] == d[..])
    })
}

/// Assigned paths under `prefix` that no declared option covers, dotted.
pub fn undeclared(declared: &BTreeSet<String>, root: &SyntaxNode, prefix: &str) -> Vec<String> {
    assigned_option_paths(root, prefix)
        .into_iter()
        .filter(|p| !is_declared(declared, p))
        .map(|p| p.join("."))
        .collect()
}

enum Stop {
    AttrSet(SyntaxNode),
    LetIn,
    Other,
}

/// Walks from a binding up through enclosing attrset bindings, collecting the full path.
/// `through_wrappers`: also climb out of `mkIf c { ... }`, `mkMerge [ ... ]` and the like.
fn climb(avp: &ast::AttrpathValue, through_wrappers: bool) -> (Vec<String>, Stop) {
    let path = binding_path(avp);
    match avp.syntax().parent() {
        Some(n) if n.kind() == SyntaxKind::NODE_LET_IN => (path, Stop::LetIn),
        Some(n) if n.kind() == SyntaxKind::NODE_ATTR_SET => {
            let (outer, stop) = climb_set(&n, through_wrappers);
            ([outer, path].concat(), stop)
        }
        _ => (path, Stop::Other),
    }
}

/// The path at which an attrset is the value, and where the climb stopped.
fn climb_set(set: &SyntaxNode, through_wrappers: bool) -> (Vec<String>, Stop) {
    let is_wrapper = |n: &SyntaxNode| {
        n.kind() == SyntaxKind::NODE_APPLY
            && ast::Expr::cast(n.clone()).is_some_and(|e| head_is(&e, &WRAPPER_FNS))
    };
    let mut up = set.parent();
    while let Some(n) = up.clone() {
        // A list is a boundary (`modules = [ { ... } ]` starts afresh) unless it is
        // `mkMerge [ ... ]`.
        let through = n.kind() == SyntaxKind::NODE_PAREN
            || (through_wrappers
                && (is_wrapper(&n)
                    || (n.kind() == SyntaxKind::NODE_LIST
                        && n.parent().is_some_and(|p| is_wrapper(&p)))));
        if !through {
            break;
        }
        up = n.parent();
    }
    match up.and_then(ast::AttrpathValue::cast) {
        Some(outer) => climb(&outer, through_wrappers),
        None => (Vec::new(), Stop::AttrSet(set.clone())),
    }
}

fn binding_path(avp: &ast::AttrpathValue) -> Vec<String> {
    avp.attrpath()
        .map(|p| p.attrs().map(|a| attr_name(&a)).collect())
        .unwrap_or_default()
}

fn attr_name(attr: &ast::Attr) -> String {
    match attr {
        ast::Attr::Ident(i) => i.syntax().text().to_string(),
        ast::Attr::Str(s) => s
            .normalized_parts()
            .into_iter()
            .map(|p| match p {
                ast::InterpolPart::Literal(l) => l,
                ast::InterpolPart::Interpolation(_) => "<dynamic>".to_owned(),
            })
            .collect(),
        ast::Attr::Dynamic(_) => "<dynamic>".to_owned(),
    }
}

/// The attrset a module file evaluates to: under its lambda, lets, `with`s and parens.
fn module_attrset(root: &SyntaxNode) -> Option<SyntaxNode> {
    let mut expr = ast::Root::cast(root.clone())?.expr()?;
    loop {
        expr = match expr {
            ast::Expr::Lambda(l) => l.body()?,
            ast::Expr::LetIn(l) => l.body()?,
            ast::Expr::With(w) => w.body()?,
            ast::Expr::Paren(p) => p.expr()?,
            ast::Expr::AttrSet(s) => return Some(s.syntax().clone()),
            _ => return None,
        }
    }
}

/// The function at the head of an application chain (`lib.mkOption`, `mkPackageOption pkgs "x" { }`).
fn head_is(expr: &ast::Expr, names: &[&str]) -> bool {
    let mut e = expr.clone();
    loop {
        e = match e {
            ast::Expr::Apply(a) => match a.lambda() {
                Some(f) => f,
                None => return false,
            },
            ast::Expr::Paren(p) => match p.expr() {
                Some(x) => x,
                None => return false,
            },
            ast::Expr::Ident(i) => return names.contains(&i.syntax().text().to_string().as_str()),
            ast::Expr::Select(s) => {
                return s
                    .attrpath()
                    .and_then(|p| p.attrs().last())
                    .is_some_and(|a| names.contains(&attr_name(&a).as_str()));
            }
            _ => return false,
        }
    }
}

/// The `type = ...` expression of an `mkOption { ... }` binding.
fn option_type(avp: &ast::AttrpathValue) -> Option<ast::Expr> {
    let ast::Expr::Apply(apply) = avp.value()? else {
        return None;
    };
    let ast::Expr::AttrSet(args) = apply.argument()? else {
        return None;
    };
    args.attrpath_values()
        .find(|b| binding_path(b) == ["type"])
        .and_then(|b| b.value())
}

fn wildcard_for(type_text: &str) -> Vec<String> {
    let before = type_text.split("submodule").next().unwrap_or("");
    if before.contains("listOf") {
        vec!["*".to_owned()]
    } else if before.contains("attrsOf") || before.contains("lazyAttrsOf") {
        vec!["<name>".to_owned()]
    } else {
        Vec::new()
    }
}

fn mentions_submodule(type_text: &str, name: &str) -> bool {
    type_text.split("submodule").skip(1).any(|rest| {
        rest.trim_start_matches([' ', '(', '\n', '\t'])
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '\''))
            .next()
            == Some(name)
    })
}

fn is_attrset_value(expr: &ast::Expr) -> bool {
    match expr {
        ast::Expr::AttrSet(_) => true,
        ast::Expr::Paren(p) => p.expr().is_some_and(|e| is_attrset_value(&e)),
        // `mkIf c { ... }`: the attrset inside is walked on its own.
        ast::Expr::Apply(a) if head_is(expr, &WRAPPER_FNS) => a
            .argument()
            .is_some_and(|e| is_attrset_value(&e) || matches!(e, ast::Expr::List(_))),
        _ => false,
    }
}

fn starts_with(path: &[String], prefix: &[&str]) -> bool {
    path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dotted(set: BTreeSet<Vec<String>>) -> Vec<String> {
        set.into_iter().map(|p| p.join(".")).collect()
    }

    #[test]
    fn declared_covers_nesting_submodules_and_inline_submodules() {
        let root = parse_text(
            r#"{ lib, pkgs, ... }:
            let
              inherit (lib) mkOption types;
              peer = { options.addr = mkOption { type = types.str; }; };
            in {
              options.services.x = {
                enable = lib.mkEnableOption "x";
                package = lib.mkPackageOption pkgs "x" { };
                a.b = mkOption { type = types.int; };
                peers = mkOption { type = types.attrsOf (types.submodule peer); };
                list = mkOption { type = types.listOf (types.submodule { options.port = mkOption { }; }); };
              };
              options.services.y.enable = lib.mkEnableOption "y";
              config.services.z = mkOption { };
            }"#,
            "t.nix",
        )
        .unwrap();
        assert_eq!(
            dotted(declared_option_paths(&root)),
            [
                "services.x.a.b",
                "services.x.enable",
                "services.x.list",
                "services.x.list.*.port",
                "services.x.package",
                "services.x.peers",
                "services.x.peers.<name>.addr",
                "services.y.enable",
            ]
        );
    }

    #[test]
    fn assigned_follows_lists_wrappers_and_inherits() {
        let root = parse_text(
            r#"{ profile }: {
              modules = [
                { services.x = lib.mkIf true { enable = true; inherit profile; peers."10.0.0.1" = { addr = "a"; }; }; }
              ];
              services.x.list = [ { port = 1; } ];
              services.other = 1;
            }"#,
            "t.nix",
        )
        .unwrap();
        let got = assigned_option_paths(&root, "services.x");
        assert!(got.contains(&vec!["services".into(), "x".into(), "enable".into()]));
        assert!(got.contains(&vec!["services".into(), "x".into(), "profile".into()]));
        assert!(got.contains(&vec![
            "services".into(),
            "x".into(),
            "peers".into(),
            "10.0.0.1".into(),
            "addr".into()
        ]));
        assert!(got.contains(&vec!["services".into(), "x".into(), "list".into()]));
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn is_declared_needs_sub_options_when_declared() {
        let declared: BTreeSet<String> = ["s.nodes", "s.nodes.<name>.ip", "s.images"]
            .into_iter()
            .map(String::from)
            .collect();
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(is_declared(&declared, &p(&["s", "nodes", "aa:bb", "ip"])));
        assert!(!is_declared(&declared, &p(&["s", "nodes", "aa:bb", "ipp"])));
        assert!(is_declared(&declared, &p(&["s", "images", "worker"])));
        assert!(!is_declared(&declared, &p(&["s", "imagez"])));
    }
}

//! Entries into the inventory's own text. TOML through toml_edit: comments, order, spacing and
//! every existing line stay as they are; each entry is appended as one `[[nodes]]` table in the
//! field order of examples/runbook.toml. JSON inventories are edited as JSON (pretty-printed
//! again: JSON keeps no comments to lose).

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, value};

use super::Entry;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("not TOML the editor can keep: {0}")]
    Toml(String),
    #[error("not JSON: {0}")]
    Json(String),
    #[error("`nodes` is not an array of tables")]
    Shape,
}

/// The TOML text with `entries` appended.
pub fn toml(text: &str, entries: &[Entry]) -> Result<String, EditError> {
    let mut doc: DocumentMut = text.parse().map_err(|e| EditError::Toml(format!("{e}")))?;
    if !doc.contains_key("nodes") {
        doc.insert("nodes", Item::ArrayOfTables(Default::default()));
    }
    let nodes = doc["nodes"]
        .as_array_of_tables_mut()
        .ok_or(EditError::Shape)?;
    for e in entries {
        nodes.push(table(e));
    }
    Ok(doc.to_string())
}

fn strings(items: &[String]) -> Array {
    items.iter().map(String::as_str).collect()
}

fn table(e: &Entry) -> Table {
    let mut t = Table::new();
    t.decor_mut()
        .set_prefix("\n# enlisted by plasmagen enlist\n");
    t.insert("hostname", value(e.hostname.as_str()));
    t.insert("role", value(e.role.as_str()));
    t.insert("mac", value(e.mac.as_str()));
    t.insert("provisioning_ip", value(e.provisioning_ip.to_string()));
    t.insert("production_ip", value(e.production_ip.to_string()));
    if !e.production_macs.is_empty() {
        t.insert("production_macs", value(strings(&e.production_macs)));
    }
    t.insert("disks", value(strings(&e.disks)));
    t.insert("disk_layout", value(e.disk_layout.as_str()));
    t.insert("firmware", value(e.firmware.as_str()));
    if let Some((address, user)) = &e.bmc {
        let mut bmc = InlineTable::new();
        bmc.insert("address", address.as_str().into());
        bmc.insert("username", user.as_str().into());
        t.insert("bmc", value(bmc));
    }
    t
}

/// The JSON text with `entries` appended to `nodes`.
pub fn json(text: &str, entries: &[Entry]) -> Result<String, EditError> {
    let mut doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| EditError::Json(e.to_string()))?;
    let obj = doc.as_object_mut().ok_or(EditError::Shape)?;
    let nodes = obj
        .entry("nodes")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or(EditError::Shape)?;
    for e in entries {
        let mut n = serde_json::json!({
            "hostname": e.hostname,
            "role": e.role.as_str(),
            "mac": e.mac,
            "provisioning_ip": e.provisioning_ip.to_string(),
            "production_ip": e.production_ip.to_string(),
            "disks": e.disks,
            "disk_layout": e.disk_layout.as_str(),
            "firmware": e.firmware,
        });
        if !e.production_macs.is_empty() {
            n["production_macs"] = serde_json::json!(e.production_macs);
        }
        if let Some((address, user)) = &e.bmc {
            n["bmc"] = serde_json::json!({"address": address, "username": user});
        }
        nodes.push(n);
    }
    let mut out = serde_json::to_string_pretty(&doc).map_err(|e| EditError::Json(e.to_string()))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::inventory::{DiskLayout, Role};

    fn entry() -> Entry {
        Entry {
            hostname: "node06".into(),
            role: Role::Worker,
            mac: "52:54:00:aa:bb:cc".into(),
            provisioning_ip: Ipv4Addr::new(10, 0, 100, 80),
            production_ip: Ipv4Addr::new(10, 0, 200, 22),
            disks: vec!["/dev/disk/by-id/ata-X".into()],
            disk_layout: DiskLayout::Single,
            firmware: "bios".into(),
            production_macs: vec![],
            bmc: None,
        }
    }

    #[test]
    fn toml_keeps_comments_and_layout() {
        let text =
            "# fleet\n[cluster]\nname = \"c\"   # the name\n\n[[nodes]]\nhostname = \"node01\"\n";
        let out = toml(text, &[entry()]).unwrap();
        assert!(out.starts_with(text), "{out}");
        let added = &out[text.len()..];
        assert!(
            added.contains("[[nodes]]\nhostname = \"node06\""),
            "{added}"
        );
        assert!(
            !added.contains("production_macs") && !added.contains("bmc"),
            "{added}"
        );
    }

    #[test]
    fn json_gets_a_node_object() {
        let text = r#"{"cluster": {"name": "c"}, "nodes": [{"hostname": "node01"}]}"#;
        let out: serde_json::Value =
            serde_json::from_str(&json(text, &[entry()]).unwrap()).unwrap();
        assert_eq!(out["nodes"][1]["hostname"], "node06");
        assert_eq!(out["nodes"][1]["firmware"], "bios");
        assert_eq!(out["nodes"][0]["hostname"], "node01");
        assert!(matches!(json("[]", &[entry()]), Err(EditError::Shape)));
    }
}

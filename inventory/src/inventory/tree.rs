//! A source-format-neutral value tree with byte spans, so TOML and JSON inventories go through
//! the same field checks and TOML errors can point at line:column.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

#[derive(Debug, Clone)]
pub struct Item {
    pub value: Value,
    pub span: Option<Range<usize>>,
}

#[derive(Debug, Clone)]
pub enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Item>),
    /// Entries keep the key's own span for "unknown field" errors.
    Table(Vec<Entry>),
    /// TOML datetimes and JSON null: never valid in an inventory.
    Other(&'static str),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub key_span: Option<Range<usize>>,
    pub item: Item,
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
            Value::Other(name) => name,
        }
    }
}

/// A syntax error with the byte offset where the parser found it.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub offset: Option<usize>,
    /// Line and column given directly by parsers that report them (serde_json).
    pub line_col: Option<(usize, usize)>,
}

pub fn parse_toml(src: &str) -> Result<Item, SyntaxError> {
    let table = DeTable::parse(src).map_err(|e| SyntaxError {
        message: e.message().trim().to_string(),
        offset: e.span().map(|s| s.start),
        line_col: None,
    })?;
    let span = table.span();
    Ok(Item {
        value: toml_table(table.get_ref()),
        span: Some(span),
    })
}

fn toml_table(table: &DeTable<'_>) -> Value {
    Value::Table(
        table
            .iter()
            .map(|(k, v)| Entry {
                key: k.get_ref().to_string(),
                key_span: Some(k.span()),
                item: Item {
                    value: toml_value(v.get_ref()),
                    span: Some(v.span()),
                },
            })
            .collect(),
    )
}

fn toml_value(value: &DeValue<'_>) -> Value {
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            let digits = digits
                .trim_start_matches("0x")
                .trim_start_matches("0o")
                .trim_start_matches("0b");
            match i64::from_str_radix(digits, i.radix()) {
                Ok(n) => Value::Integer(n),
                Err(_) => Value::Other("out-of-range integer"),
            }
        }
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse()
            .map_or(Value::Other("float"), Value::Float),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(_) => Value::Other("datetime"),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| Item {
                    value: toml_value(v.get_ref()),
                    span: Some(v.span()),
                })
                .collect(),
        ),
        DeValue::Table(t) => toml_table(t),
    }
}

pub fn parse_json(src: &str) -> Result<Item, SyntaxError> {
    let value: serde_json::Value = serde_json::from_str(src).map_err(|e| SyntaxError {
        message: e.to_string(),
        offset: None,
        line_col: Some((e.line(), e.column())),
    })?;
    Ok(json_item(value))
}

fn json_item(value: serde_json::Value) -> Item {
    use serde_json::Value as J;
    let value = match value {
        J::Null => Value::Other("null"),
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => n.as_f64().map_or(Value::Other("number"), Value::Float),
        },
        J::String(s) => Value::String(s),
        J::Array(a) => Value::Array(a.into_iter().map(json_item).collect()),
        J::Object(o) => Value::Table(
            o.into_iter()
                .map(|(key, v)| Entry {
                    key,
                    key_span: None,
                    item: json_item(v),
                })
                .collect(),
        ),
    };
    Item { value, span: None }
}

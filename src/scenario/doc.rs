//! A TOML document as a tree that remembers where each value came from (file line and column,
//! or which `--set`), so every error can point at the line and key, and overrides can be
//! applied before anything is interpreted.

use crate::migration::params::suggest;
use crate::migration::MigrationParameters;
use toml::de::{DeTable, DeValue};

/// Where a value was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// In the file, 1-based.
    File {
        /// Line.
        line: usize,
        /// Column.
        col: usize,
    },
    /// The n-th `--set` (0-based).
    Set(usize),
    /// Not written anywhere (a default).
    Default,
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The value.
    pub kind: Kind,
    /// Its origin.
    pub origin: Origin,
    /// The text as typed, for `--set` values (so "10.2" stays "10.2").
    pub raw: Option<String>,
}

/// TOML value kinds used in scenarios.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// String.
    Str(String),
    /// Array.
    Array(Vec<Value>),
    /// Table, keys in file order.
    Table(Table),
}

impl Kind {
    /// The TOML type's name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Int(_) => "integer",
            Kind::Float(_) => "float",
            Kind::Bool(_) => "boolean",
            Kind::Str(_) => "string",
            Kind::Array(_) => "array",
            Kind::Table(_) => "table",
        }
    }
}

/// A table: keys in order, each with its value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Entries.
    pub entries: Vec<(String, Value)>,
}

impl Table {
    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn set(&mut self, key: &str, value: Value) {
        match self.get_mut(key) {
            Some(v) => *v = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }
}

/// A file that could not be read as a scenario.
#[derive(Debug, displaydoc::Display, thiserror::Error)]
pub enum ScenarioError {
    /// cannot read scenario {path}: {source}
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// {path}:{line}:{col}: TOML syntax error: {message}
    Syntax {
        /// The file.
        path: String,
        /// Line (1-based).
        line: usize,
        /// Column (1-based).
        col: usize,
        /// The parser's message.
        message: String,
    },
    /// {at}: `{key}`: {message}
    Invalid {
        /// "file:line:col" or "--set NAME=VALUE".
        at: String,
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// --set {arg}: {message}
    BadSet {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        message: String,
    },
}

/// Renders origins for messages.
#[derive(Clone, Debug)]
pub struct Context {
    /// The file as the user named it.
    pub path: String,
    /// The `--set` arguments as given.
    pub sets: Vec<String>,
}

impl Context {
    /// "file:line:col", "--set ARG" or "file".
    pub fn at(&self, origin: Origin) -> String {
        match origin {
            Origin::File { line, col } => format!("{}:{line}:{col}", self.path),
            Origin::Set(i) => format!(
                "--set {}",
                self.sets.get(i).map(String::as_str).unwrap_or("?")
            ),
            Origin::Default => self.path.clone(),
        }
    }

    /// An error about `key` written at `origin`.
    pub fn invalid(&self, origin: Origin, key: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            at: self.at(origin),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    fn origin(&self, offset: usize) -> Origin {
        let line = self.0.partition_point(|&s| s <= offset);
        let col = offset - self.0[line - 1] + 1;
        Origin::File { line, col }
    }
}

/// Parse `text` (from `path`) into a [`Table`].
pub fn parse_document(path: &str, text: &str) -> Result<Table, ScenarioError> {
    let lines = LineIndex::new(text);
    let doc = DeTable::parse(text).map_err(|e| {
        let origin = e
            .span()
            .map_or(Origin::File { line: 1, col: 1 }, |s| lines.origin(s.start));
        let (line, col) = match origin {
            Origin::File { line, col } => (line, col),
            _ => (1, 1),
        };
        ScenarioError::Syntax {
            path: path.to_string(),
            line,
            col,
            message: e.message().trim().to_string(),
        }
    })?;
    let ctx = Context {
        path: path.to_string(),
        sets: Vec::new(),
    };
    convert_table(doc.get_ref(), &lines, &ctx, "")
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn convert_table(
    table: &DeTable<'_>,
    lines: &LineIndex,
    ctx: &Context,
    prefix: &str,
) -> Result<Table, ScenarioError> {
    let mut out = Table::default();
    let mut items: Vec<_> = table.iter().collect();
    // Keep file order so messages and reports follow the file.
    items.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in items {
        let key = k.get_ref().to_string();
        let path = join(prefix, &key);
        let value = convert_value(v.get_ref(), lines.origin(v.span().start), lines, ctx, &path)?;
        out.entries.push((key, value));
    }
    Ok(out)
}

fn convert_value(
    v: &DeValue<'_>,
    origin: Origin,
    lines: &LineIndex,
    ctx: &Context,
    path: &str,
) -> Result<Value, ScenarioError> {
    let kind = match v {
        DeValue::String(s) => Kind::Str(s.to_string()),
        DeValue::Integer(i) => {
            let text = i.as_str().replace('_', "");
            let n = i64::from_str_radix(&text, i.radix())
                .map_err(|_| ctx.invalid(origin, path, "integer out of range"))?;
            Kind::Int(n)
        }
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            let x: f64 = text
                .parse()
                .map_err(|_| ctx.invalid(origin, path, format!("cannot read float {text}")))?;
            Kind::Float(x)
        }
        DeValue::Boolean(b) => Kind::Bool(*b),
        DeValue::Datetime(_) => {
            return Err(ctx.invalid(origin, path, "dates have no meaning in a scenario"))
        }
        DeValue::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.push(convert_value(
                    item.get_ref(),
                    lines.origin(item.span().start),
                    lines,
                    ctx,
                    &format!("{path}[{i}]"),
                )?);
            }
            Kind::Array(out)
        }
        DeValue::Table(t) => Kind::Table(convert_table(t, lines, ctx, path)?),
    };
    Ok(Value {
        kind,
        origin,
        raw: None,
    })
}

/// One `--set NAME=VALUE`, resolved to a key path.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    /// The argument as given (for messages).
    pub arg: String,
    /// Key path; a region is addressed as ["region", name-or-index, key].
    pub path: Vec<String>,
    /// The value, typed as TOML would type it, else a string.
    pub value: Value,
}

/// Read `NAME=VALUE`. QEMU parameter names (and the `x-` aliases) need no prefix; anything else
/// is a dotted path into the scenario (`guest.memory`, `region.heap.write_rate_pages_s`).
pub fn parse_override(arg: &str, index: usize) -> Result<Override, ScenarioError> {
    let bad = |message: String| ScenarioError::BadSet {
        arg: arg.to_string(),
        message,
    };
    let Some((name, text)) = arg.split_once('=') else {
        return Err(bad("expected NAME=VALUE".into()));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("the NAME before '=' is empty".into()));
    }
    let path: Vec<String> = if let Some(canonical) = MigrationParameters::canonical_name(name) {
        vec!["migration".into(), canonical.into()]
    } else {
        let parts: Vec<String> = name.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(bad(format!(
                "`{name}` is not a key path (e.g. guest.memory)"
            )));
        }
        // A bare name that is not one of the scenario's top-level values is taken for a QEMU
        // parameter, so a misspelt one gets QEMU's "is unexpected" and a suggestion.
        if parts.len() == 1 && !TOP_LEVEL_VALUES.contains(&name) {
            return Ok(Override {
                arg: arg.to_string(),
                path: vec!["migration".into(), name.to_string()],
                value: typed_value(text, index),
            });
        }
        if parts.len() == 2 && parts[0] == "migration" {
            let canonical = MigrationParameters::canonical_name(&parts[1]).unwrap_or(&parts[1]);
            vec!["migration".into(), canonical.to_string()]
        } else {
            parts
        }
    };
    Ok(Override {
        arg: arg.to_string(),
        path,
        value: typed_value(text, index),
    })
}

/// Scalars at the top of a scenario file, which `--set` may name without a table.
const TOP_LEVEL_VALUES: &[&str] = &["name", "description", "seed"];

/// A `--set` value typed as TOML would type it ("30" an integer, "on" a string).
fn typed_value(text: &str, index: usize) -> Value {
    let kind = match DeValue::parse(text.trim()) {
        Ok(v) => match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                .map(Kind::Int)
                .unwrap_or_else(|_| Kind::Str(text.to_string())),
            DeValue::Float(f) => f
                .as_str()
                .replace('_', "")
                .parse()
                .map(Kind::Float)
                .unwrap_or_else(|_| Kind::Str(text.to_string())),
            DeValue::Boolean(b) => Kind::Bool(*b),
            DeValue::String(s) => Kind::Str(s.to_string()),
            _ => Kind::Str(text.to_string()),
        },
        Err(_) => Kind::Str(text.trim().to_string()),
    };
    Value {
        kind,
        origin: Origin::Set(index),
        raw: Some(text.trim().to_string()),
    }
}

/// Apply overrides to a document, creating tables as needed. Keys that do not exist in the
/// schema are caught later, when the document is read, and reported against the `--set`.
pub fn apply_overrides(doc: &mut Table, overrides: &[Override]) -> Result<(), ScenarioError> {
    for o in overrides {
        let bad = |message: String| ScenarioError::BadSet {
            arg: o.arg.clone(),
            message,
        };
        let mut table = &mut *doc;
        let mut i = 0;
        while i + 1 < o.path.len() {
            let key = &o.path[i];
            if key == "region" && i == 0 {
                let selector = o.path.get(1).cloned().unwrap_or_default();
                let Some(Value {
                    kind: Kind::Array(regions),
                    ..
                }) = table.get_mut("region")
                else {
                    return Err(bad("the scenario has no [[region]]".into()));
                };
                let names: Vec<String> = regions
                    .iter()
                    .enumerate()
                    .map(|(k, r)| match &r.kind {
                        Kind::Table(t) => match t.get("name").map(|v| &v.kind) {
                            Some(Kind::Str(n)) => n.clone(),
                            _ => k.to_string(),
                        },
                        _ => k.to_string(),
                    })
                    .collect();
                let index = names.iter().position(|n| *n == selector).or_else(|| {
                    selector
                        .parse::<usize>()
                        .ok()
                        .filter(|&k| k < regions.len())
                });
                let Some(index) = index else {
                    return Err(bad(format!(
                        "no region named `{selector}` (regions: {})",
                        names.join(", ")
                    )));
                };
                if o.path.len() != 3 {
                    return Err(bad("a region key is region.NAME.KEY".into()));
                }
                let Kind::Table(t) = &mut regions[index].kind else {
                    return Err(bad("region entries must be tables".into()));
                };
                table = t;
                i = 2;
                continue;
            }
            if table.get(key).is_none() {
                table.entries.push((
                    key.clone(),
                    Value {
                        kind: Kind::Table(Table::default()),
                        origin: o.value.origin,
                        raw: None,
                    },
                ));
            }
            match table.get_mut(key).map(|v| &mut v.kind) {
                Some(Kind::Table(t)) => table = t,
                _ => return Err(bad(format!("`{}` is not a table", o.path[..=i].join(".")))),
            }
            i += 1;
        }
        let leaf = &o.path[o.path.len() - 1];
        if o.path.len() >= 2 && o.path[0] == "migration" {
            // A file may spell a parameter by its alias; the override replaces it either way.
            let canonical = MigrationParameters::canonical_name(leaf);
            table.entries.retain(|(k, _)| {
                k == leaf
                    || canonical.is_none()
                    || MigrationParameters::canonical_name(k) != canonical
            });
        }
        table.set(leaf, o.value.clone());
    }
    Ok(())
}

/// Reads one table's fields.
pub struct Fields<'t> {
    ctx: &'t Context,
    path: String,
    table: &'t Table,
}

impl<'t> Fields<'t> {
    /// Fields of `table`, found at dotted `path`.
    pub fn new(ctx: &'t Context, path: &str, table: &'t Table) -> Self {
        Self {
            ctx,
            path: path.to_string(),
            table,
        }
    }

    /// The dotted path of `key` in this table.
    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The context for building errors.
    pub fn ctx(&self) -> &'t Context {
        self.ctx
    }

    /// The value at `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'t Value> {
        self.table.get(key)
    }

    /// An error about `key` at `value`.
    pub fn invalid(&self, value: &Value, key: &str, message: impl Into<String>) -> ScenarioError {
        self.ctx.invalid(value.origin, &self.key_path(key), message)
    }

    /// Refuse any key not in `known`, naming the first with a suggestion. Called before
    /// anything is read, so a misspelt key is reported as such rather than as a missing one.
    pub fn only(self, known: &[&str]) -> Result<Self, ScenarioError> {
        for (key, value) in &self.table.entries {
            if !known.contains(&key.as_str()) {
                let hint = suggest(key, known).replace('\'', "`");
                return Err(self.ctx.invalid(
                    value.origin,
                    &join(&self.path, key),
                    format!("unknown key{hint}; known keys here: {}", known.join(", ")),
                ));
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_point_at_lines() {
        let doc = parse_document("f.toml", "a = 1\n[b]\nc = \"x\"\n").unwrap();
        assert_eq!(
            doc.get("a").unwrap().origin,
            Origin::File { line: 1, col: 5 }
        );
        let Kind::Table(b) = &doc.get("b").unwrap().kind else {
            panic!()
        };
        assert_eq!(b.get("c").unwrap().origin, Origin::File { line: 3, col: 5 });
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let e = parse_document("f.toml", "a = 1\nb = = 2\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("f.toml:2:"), "{text}");
    }

    #[test]
    fn overrides_resolve_qemu_names_and_region_names() {
        let mut doc = parse_document(
            "f.toml",
            "[migration]\nx-cpu-throttle-initial = 30\n[[region]]\nname = \"heap\"\nsize = 4096\n",
        )
        .unwrap();
        let o1 = parse_override("cpu-throttle-initial=40", 0).unwrap();
        let o2 = parse_override("region.heap.size=64GiB", 1).unwrap();
        let o3 = parse_override("autoconv.qemu_version=7.2", 2).unwrap();
        apply_overrides(&mut doc, &[o1, o2, o3]).unwrap();
        let Kind::Table(m) = &doc.get("migration").unwrap().kind else {
            panic!()
        };
        assert_eq!(m.entries.len(), 1, "the alias was replaced: {m:?}");
        assert_eq!(m.get("cpu-throttle-initial").unwrap().kind, Kind::Int(40));
        let Kind::Table(a) = &doc.get("autoconv").unwrap().kind else {
            panic!()
        };
        let v = a.get("qemu_version").unwrap();
        assert_eq!(v.raw.as_deref(), Some("7.2"));
        let e = apply_overrides(
            &mut doc,
            &[parse_override("region.nope.size=1", 3).unwrap()],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--set region.nope.size=1: no region named `nope` (regions: heap)"
        );
        assert!(parse_override("noequals", 0).is_err());
    }
}

//! The scenario format, generated from the scenario types: a JSON schema for editors
//! (`scenarios/scenario.schema.json`; taplo / Even Better TOML validate a `.toml` against it) and a reference page
//! (`scenarios/REFERENCE.md`: every key with its type, default, range and meaning).
//!
//! Why generated: a hand-written key list went stale (smoke.toml's comments missed six keys). Both files are
//! made from the same `JsonSchema` derive as the types serde reads, with ranges mirroring `validate.rs`;
//! `harness/tests/scenario_reference.rs` fails when the checked-in files differ (regenerate with
//! `DBTORTURE_BLESS=1`) and validates every shipped scenario against the schema.

use super::Scenario;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The JSON schema of a scenario file (as JSON; TOML maps onto it one to one).
pub fn schema() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(Scenario)).expect("a schema is JSON");
    if let Some(o) = v.as_object_mut() {
        o.insert("title".into(), "dbtorture scenario".into());
    }
    v
}

/// The schema as a checked-in file's text.
pub fn schema_text() -> String {
    serde_json::to_string_pretty(&schema()).expect("JSON") + "\n"
}

/// Follow a `$ref` into `$defs`.
fn resolve<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => root["$defs"].get(name).unwrap_or(v),
        None => v,
    }
}

/// The non-null alternative of an `Option<T>` (`anyOf: [T, null]` or `type: [t, "null"]`), and whether optional.
fn unwrap_option<'a>(root: &'a Value, v: &'a Value) -> (&'a Value, bool) {
    if let Some(alts) = v.get("anyOf").and_then(Value::as_array)
        && alts.len() == 2
        && let Some(t) = alts.iter().find(|a| a.get("type") != Some(&Value::from("null")))
    {
        return (resolve(root, t), true);
    }
    let optional = v.get("type").and_then(Value::as_array).is_some_and(|t| t.iter().any(|x| x == "null"));
    (resolve(root, v), optional)
}

/// A type in words: "integer", "string: one of a, b", "list of string", "table".
fn type_name(root: &Value, v: &Value) -> String {
    let v = resolve(root, v);
    if let Some(alts) = v.get("oneOf").and_then(Value::as_array) {
        let names: Vec<String> = alts
            .iter()
            .flat_map(|a| {
                a.get("const")
                    .cloned()
                    .into_iter()
                    .chain(a.get("enum").and_then(Value::as_array).cloned().unwrap_or_default())
            })
            .filter_map(|c| c.as_str().map(|s| format!("`\"{s}\"`")))
            .collect();
        return format!("string: one of {}", names.join(", "));
    }
    if let Some(e) = v.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = e.iter().filter_map(|c| c.as_str().map(|s| format!("`\"{s}\"`"))).collect();
        return format!("string: one of {}", names.join(", "));
    }
    let t = match v.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("").into(),
        _ => String::new(),
    };
    match t.as_str() {
        "array" => format!("list of {}", v.get("items").map(|i| type_name(root, i)).unwrap_or_default()),
        "object" if v.get("properties").is_some() => "table".into(),
        "object" => format!(
            "table of name → {}",
            v.get("additionalProperties").map(|i| type_name(root, i)).unwrap_or_else(|| "value".into())
        ),
        "number" => "number".into(),
        other => other.into(),
    }
}

/// "1 ≤ x ≤ 50", "x ≥ 1", "at least 1 item", or "".
fn range(v: &Value) -> String {
    let num = |k: &str| v.get(k).and_then(Value::as_f64).map(|n| n.to_string());
    let mut r = match (num("minimum"), num("maximum")) {
        (Some(lo), Some(hi)) => format!("{lo} ≤ x ≤ {hi}"),
        (Some(lo), None) if lo != "0" => format!("x ≥ {lo}"),
        (_, Some(hi)) => format!("x ≤ {hi}"),
        _ => String::new(),
    };
    if let Some(n) = v.get("minItems").and_then(Value::as_u64) {
        r = format!("at least {n} item{}", if n == 1 { "" } else { "s" });
    }
    r
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn default_text(d: Option<&Value>, optional: bool, required: bool) -> String {
    match d {
        _ if required => "required".into(),
        Some(Value::Null) | None if optional => "(none)".into(),
        None => "(see below)".into(),
        Some(v) => format!("`{v}`"),
    }
}

/// One table of `props` (a TOML table), and the sections of the tables inside it.
fn table(
    root: &Value,
    title: &str,
    props: &Map<String, Value>,
    required: &[Value],
    defaults: Option<&Value>,
    out: &mut String,
) {
    let _ = writeln!(out, "\n## {title}\n\n| key | type | default | range | meaning |\n|---|---|---|---|---|");
    let mut nested = Vec::new();
    for (key, p) in props {
        let (inner, optional) = unwrap_option(root, p);
        let default = p.get("default").or_else(|| defaults.and_then(|d| d.get(key)));
        let mut meaning =
            p.get("description").or_else(|| inner.get("description")).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(alts) = inner.get("oneOf").and_then(Value::as_array) {
            for a in alts {
                if let (Some(c), Some(d)) =
                    (a.get("const").and_then(Value::as_str), a.get("description").and_then(Value::as_str))
                {
                    let _ = write!(meaning, " `\"{c}\"`: {d}");
                }
            }
        }
        let _ = writeln!(
            out,
            "| `{key}` | {} | {} | {} | {} |",
            cell(&type_name(root, inner)),
            cell(
                &if inner.get("properties").is_some() && !optional && !required.contains(&Value::from(key.as_str())) {
                    "(defaults below)".into()
                } else {
                    default_text(default, optional, required.contains(&Value::from(key.as_str())))
                }
            ),
            cell(&range(inner)),
            cell(meaning.trim())
        );
        if let Some(sub) = inner.get("properties").and_then(Value::as_object) {
            let req = inner.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
            nested.push((key.clone(), sub.clone(), req, default.cloned().or_else(|| inner.get("default").cloned())));
        }
    }
    for (key, sub, req, d) in nested {
        let name = if title == "Top level" { format!("`[{key}]`") } else { format!("{title} `{key}`") };
        table(root, &name, &sub, &req, d.as_ref(), out);
    }
}

/// The reference page (Markdown).
pub fn markdown() -> String {
    let root = schema();
    let mut out = String::from(
        "# Scenario reference\n\nGenerated from the scenario types (`harness/src/scenario/mod.rs`) by \
         `harness/tests/scenario_reference.rs`; regenerate with `DBTORTURE_BLESS=1 cargo nextest run --release -p \
         dbtorture --test scenario_reference`. Editors can validate a scenario against \
         [`scenario.schema.json`](scenario.schema.json). Ranges are checked again at load time (`validate.rs`), \
         with rules across keys (e.g. `delay_ms_max ≥ delay_ms_min`, a kill point the backends can pass).\n",
    );
    if let Some(props) = root.get("properties").and_then(Value::as_object) {
        let req = root.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
        table(&root, "Top level", props, &req, None, &mut out);
    }
    out
}

//! The scenario reference and its JSON schema are generated from the scenario types and checked in:
//! `scenarios/REFERENCE.md` and `scenarios/scenario.schema.json` must equal what the types give now
//! (regenerate with `DBTORTURE_BLESS=1 cargo nextest run --release -p dbtorture --test scenario_reference`),
//! every shipped scenario validates against the schema, the schema rejects unknown keys and values out of
//! range, and the reference names every key any shipped scenario uses.

mod common;
use common::root;

use dbtorture::scenario::reference;
use serde_json::Value;

fn golden(rel: &str, actual: &str) {
    let path = root().join(rel);
    if std::env::var_os("DBTORTURE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(expected == actual, "{rel} is stale: regenerate with DBTORTURE_BLESS=1 (see its first lines)");
}

fn toml_json(text: &str) -> Value {
    toml::from_str::<Value>(text).unwrap()
}

#[test]
fn the_reference_and_schema_are_generated_from_the_types() {
    golden("scenarios/scenario.schema.json", &reference::schema_text());
    golden("scenarios/REFERENCE.md", &reference::markdown());
}

#[test]
fn every_shipped_scenario_validates_against_the_schema() {
    let v = jsonschema::validator_for(&reference::schema()).unwrap();
    for (name, text) in dbtorture::shipped::SCENARIOS {
        let errors: Vec<String> =
            v.iter_errors(&toml_json(text)).map(|e| format!("{}: {e}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn the_schema_rejects_what_loading_rejects() {
    let v = jsonschema::validator_for(&reference::schema()).unwrap();
    let base = "name = 't'\nbackends = ['sqlite']\n[expect]\nsqlite = ['clean']\n";
    assert!(v.is_valid(&toml_json(base)), "a minimal scenario is valid");
    for bad in [
        "nosuch = 1\n",                        // an unknown key
        "[kill]\nprobability = 1.5\n",         // out of range
        "[kill]\nmode = 'sometimes'\n",        // not one of the modes
        "[workload]\ninitial_fraction = -1\n", // out of range
        "[timeouts]\ncycle_ms = 5\n",          // below the minimum
    ] {
        let (top, table) = bad.split_once('[').map(|(a, b)| (a, format!("[{b}"))).unwrap_or((bad, String::new()));
        let text = format!("{top}{base}{table}");
        let text = if table.is_empty() { format!("{bad}{base}") } else { text };
        assert!(!v.is_valid(&toml_json(&text)), "the schema accepts {bad:?}");
        let loaded = dbtorture::scenario::Scenario::parse(&text, std::path::Path::new("t.toml"));
        assert!(loaded.is_err(), "loading accepts {bad:?} (the schema and validate.rs disagree)");
    }
}

#[test]
fn the_reference_names_every_key_the_shipped_scenarios_use() {
    let md = reference::markdown();
    fn keys(v: &Value, out: &mut Vec<String>) {
        if let Some(o) = v.as_object() {
            for (k, x) in o {
                out.push(k.clone());
                keys(x, out);
            }
        }
    }
    for (name, text) in dbtorture::shipped::SCENARIOS {
        let mut ks = Vec::new();
        let v = toml_json(text);
        // `[expect]`'s keys are backend names, not format keys.
        for (k, x) in v.as_object().unwrap() {
            ks.push(k.clone());
            if k != "expect" {
                keys(x, &mut ks);
            }
        }
        for k in ks {
            assert!(md.contains(&format!("| `{k}` |")), "{name}: key {k} is not in the reference");
        }
    }
    for row in md.lines().filter(|l| l.starts_with("| `")) {
        let meaning = row.trim_end_matches('|').rsplit(" | ").next().unwrap_or("").trim();
        assert!(!meaning.is_empty(), "a key without a meaning (add a doc comment to its field): {row}");
    }
    for needle in ["`[workload]`", "`[kill]`", "`\"sweep\"`", "1 ≤ x ≤ 50"] {
        assert!(md.contains(needle), "the reference lacks {needle}:\n{md}");
    }
}

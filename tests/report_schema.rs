//! The report's JSON is a contract: it matches `docs/report-schema.md` field by field and reads
//! back unchanged; other layouts are refused with a reason.
//!
//! Ungated and fast (synthetic data, no server): `cargo test --test report_schema`.

use std::collections::BTreeMap;

use semantic_stress::Report;
use semantic_stress::report::SCHEMA_VERSION;
use serde_json::Value;

#[path = "report/synthetic.rs"]
mod synthetic;
use synthetic::{compared, synthetic};

/// The schema document the JSON is checked against.
const SCHEMA_DOC: &str = include_str!("../docs/report-schema.md");

// ---------------------------------------------------------------------------------------------
// The documented schema

/// One documented field: its JSON type, whether `null` is allowed and whether it may be absent.
#[derive(Debug)]
struct Field {
    ty: String,
    nullable: bool,
    optional: bool,
}

/// The `### Object` tables of the schema document: object → field → type.
fn documented() -> BTreeMap<String, BTreeMap<String, Field>> {
    let mut objects = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in SCHEMA_DOC.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            current = Some(name.trim().to_owned());
            objects.insert(name.trim().to_owned(), BTreeMap::new());
            continue;
        }
        let (Some(object), Some(row)) = (&current, line.strip_prefix("| `")) else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let field = cells[0].trim_end_matches('`').to_owned();
        let spec = cells[1].trim();
        let optional = spec.ends_with(", optional");
        let spec = spec.trim_end_matches(", optional");
        let nullable = spec.ends_with(" or null");
        let ty = spec.trim_end_matches(" or null").to_owned();
        let fields: &mut BTreeMap<String, Field> = objects.get_mut(object).expect("section");
        fields.insert(
            field,
            Field {
                ty,
                nullable,
                optional,
            },
        );
    }
    objects
}

/// Checks `value` against the documented type `ty` at `path`, recursing into documented objects.
fn check(
    value: &Value,
    ty: &str,
    docs: &BTreeMap<String, BTreeMap<String, Field>>,
    path: &str,
    errors: &mut Vec<String>,
) {
    let ok = match ty {
        "integer" => value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        _ => {
            if let Some(item) = ty.strip_prefix("array of ") {
                match value.as_array() {
                    Some(items) => {
                        for (i, v) in items.iter().enumerate() {
                            check(v, item, docs, &format!("{path}[{i}]"), errors);
                        }
                        true
                    }
                    None => false,
                }
            } else {
                let Some(fields) = docs.get(ty) else {
                    errors.push(format!("{path}: type {ty:?} is not documented"));
                    return;
                };
                let Some(map) = value.as_object() else {
                    errors.push(format!("{path}: expected a {ty} object, got {value}"));
                    return;
                };
                for key in map.keys() {
                    if !fields.contains_key(key) {
                        errors.push(format!("{path}.{key}: not documented in {ty}"));
                    }
                }
                for (key, f) in fields {
                    match map.get(key) {
                        None if f.optional => {}
                        None => errors.push(format!("{path}.{key}: missing")),
                        Some(Value::Null) if f.nullable => {}
                        Some(v) => check(v, &f.ty, docs, &format!("{path}.{key}"), errors),
                    }
                }
                true
            }
        }
    };
    if !ok {
        errors.push(format!("{path}: expected {ty}, got {value}"));
    }
}

/// Every documented object type reached from `Report` in `value`.
fn reached(
    value: &Value,
    ty: &str,
    docs: &BTreeMap<String, BTreeMap<String, Field>>,
) -> Vec<String> {
    let mut out = vec![ty.to_owned()];
    let Some(fields) = docs.get(ty) else {
        return out;
    };
    for (key, f) in fields {
        let Some(v) = value.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let item = f.ty.strip_prefix("array of ").unwrap_or(&f.ty);
        if docs.contains_key(item) {
            match v.as_array() {
                Some(items) => items
                    .iter()
                    .take(1)
                    .for_each(|i| out.extend(reached(i, item, docs))),
                None => out.extend(reached(v, item, docs)),
            }
        }
    }
    out
}

#[test]
fn json_matches_the_documented_schema() {
    let report = compared();
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let docs = documented();
    assert!(docs.len() >= 15, "schema tables parsed: {:?}", docs.keys());
    let mut errors = Vec::new();
    check(&json, "Report", &docs, "report", &mut errors);
    assert!(
        errors.is_empty(),
        "schema mismatches:\n{}",
        errors.join("\n")
    );
    assert_eq!(json["schema_version"], SCHEMA_VERSION);
    // The trust line is in the JSON, the text summary and the Markdown report alike.
    let line = report.trust().line();
    assert!(
        line.starts_with("measurement trustworthy: yes — "),
        "{line}"
    );
    assert_eq!(json["trust"]["trustworthy"], true);
    assert!(report.text().contains(&line), "{}", report.text());
    assert!(report.markdown().contains(&line));
    // So is the cleanup summary.
    let cleanup = report.cleanup.as_ref().unwrap().to_string();
    assert!(cleanup.contains("12 agents: 9 deleted, 2 already gone, 1 failed"));
    assert!(report.text().contains(&cleanup) && report.markdown().contains(&cleanup));
    // The synthetic report reaches every documented object, so no table goes unchecked.
    let seen = reached(&json, "Report", &docs);
    let unseen: Vec<_> = docs.keys().filter(|k| !seen.contains(k)).collect();
    assert!(
        unseen.is_empty(),
        "documented but never checked: {unseen:?}"
    );
}

/// Whether two JSON values are equal, numbers within a relative 1e-12: serde_json's default
/// float parser may be off by one unit in the last place, and durations written as fractional
/// ms or s are read back to the nanosecond.
fn same(a: &Value, b: &Value, path: &str, errors: &mut Vec<String>) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if (x - y).abs() > 1e-12 * x.abs().max(y.abs()) {
                errors.push(format!("{path}: {x} != {y}"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                same(x, y, &format!("{path}[{i}]"), errors);
            }
        }
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => same(v, w, &format!("{path}.{k}"), errors),
                    None => errors.push(format!("{path}.{k}: missing")),
                }
            }
        }
        _ if a == b => {}
        _ => errors.push(format!("{path}: {a} != {b}")),
    }
}

#[test]
fn json_reads_back_unchanged() {
    let report = compared();
    let json = report.to_json();
    let back = Report::from_json(&json).expect("the report reads back");
    let (a, b): (Value, Value) = (
        serde_json::from_str(&json).unwrap(),
        serde_json::from_str(&back.to_json()).unwrap(),
    );
    let mut errors = Vec::new();
    same(&a, &b, "report", &mut errors);
    assert!(
        errors.is_empty(),
        "changed on the way back:\n{}",
        errors.join("\n")
    );
    assert_eq!(back.verdicts, report.verdicts);
    assert_eq!(
        back.baseline.unwrap().regressions,
        report.baseline.unwrap().regressions
    );
    assert_eq!(
        back.series.unwrap().memory_samples,
        report.series.unwrap().memory_samples
    );
}

#[test]
fn other_layouts_are_refused_with_a_reason() {
    let mut json: Value = serde_json::from_str(&synthetic("x", 1.0).to_json()).unwrap();
    json["schema_version"] = Value::from(SCHEMA_VERSION + 1);
    let err = Report::from_json(&json.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("schema_version"), "{err}");
    let err = Report::from_json("{\"rows\": []}").unwrap_err().to_string();
    assert!(err.contains("not a report"), "{err}");
}

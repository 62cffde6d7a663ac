//! Walks a rendered `config.tf.json` against the bpg/proxmox provider
//! schema extracted in tests/data/bpg-proxmox (see its README): every
//! attribute and block must exist, be settable (not computed-only), have
//! the right shape (block = object or list of objects, attribute list of
//! objects = every key present) and type (TypeInt = integral number), pass
//! the simple validations (one_of, int_between, regex, not_empty), and every
//! required attribute must be there.

use serde_json::{Map, Value};

pub fn load(version_file: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bpg-proxmox")
        .join(version_file);
    serde_json::from_str(&std::fs::read_to_string(p).expect("schema")).expect("schema json")
}

/// All problems found; empty = valid.
pub fn walk_config(config: &Value, schema: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let provider = &schema["provider"];
    match config.pointer("/provider/proxmox") {
        Some(Value::Object(body)) => walk_body("provider.proxmox", body, provider, &mut errs),
        other => errs.push(format!("provider.proxmox must be an object, got {other:?}")),
    }
    let resource = &schema["resources"]["proxmox_virtual_environment_vm"];
    if let Some(Value::Object(vms)) = config.pointer("/resource/proxmox_virtual_environment_vm") {
        for (name, body) in vms {
            let path = format!("proxmox_virtual_environment_vm.{name}");
            match body {
                Value::Object(body) => walk_resource(&path, body, resource, &mut errs),
                _ => errs.push(format!("{path} must be an object")),
            }
        }
    }
    errs
}

fn walk_resource(path: &str, body: &Map<String, Value>, attrs: &Value, errs: &mut Vec<String>) {
    let mut plain = body.clone();
    if let Some(lc) = plain.remove("lifecycle") {
        match lc.get("ignore_changes") {
            Some(Value::Array(refs)) => {
                for r in refs {
                    match r.as_str() {
                        Some(s) if reference_exists(s, attrs) => {}
                        _ => errs.push(format!(
                            "{path}.lifecycle.ignore_changes: {r} is not an attribute"
                        )),
                    }
                }
            }
            Some(Value::String(s)) if s == "all" => {}
            other => errs.push(format!(
                "{path}.lifecycle.ignore_changes: bad value {other:?}"
            )),
        }
    }
    for meta in ["depends_on", "count", "for_each", "provider"] {
        plain.remove(meta);
    }
    walk_body(path, &plain, attrs, errs);
}

/// `cpu[0].architecture` → cpu is a block with an `architecture`.
fn reference_exists(r: &str, attrs: &Value) -> bool {
    let mut here = attrs;
    for part in r.split('.') {
        let name = part.split('[').next().unwrap_or(part);
        match here.get(name) {
            Some(e) => {
                here = match e.get("attributes") {
                    Some(a) => a,
                    None => &Value::Null,
                }
            }
            None => return false,
        }
    }
    true
}

fn walk_body(path: &str, body: &Map<String, Value>, attrs: &Value, errs: &mut Vec<String>) {
    let Some(attrs) = attrs.as_object() else {
        errs.push(format!("{path}: schema has no attributes"));
        return;
    };
    for (k, v) in body {
        let p = format!("{path}.{k}");
        let Some(entry) = attrs.get(k) else {
            errs.push(format!("{p}: no such attribute or block in the schema"));
            continue;
        };
        let settable = entry["optional"] == true || entry["required"] == true;
        if !settable {
            errs.push(format!("{p}: computed-only, cannot be set"));
        }
        check_value(&p, v, entry, errs);
    }
    for (k, entry) in attrs {
        if entry["required"] == true && body.get(k).is_none_or(Value::is_null) {
            errs.push(format!("{path}.{k}: required but missing"));
        }
    }
}

fn check_value(p: &str, v: &Value, entry: &Value, errs: &mut Vec<String>) {
    if v.is_null() {
        if entry["required"] == true {
            errs.push(format!("{p}: required, got null"));
        }
        return;
    }
    if entry.get("deprecated").is_some() {
        errs.push(format!("{p}: deprecated attribute set"));
    }
    let ty = entry["type"].as_str().unwrap_or("");
    match ty {
        "string" | "number" | "bool" => check_primitive(p, v, ty, entry, errs),
        "list" | "set" => {
            let Some(items) = v.as_array() else {
                errs.push(format!("{p}: must be a list, got {v}"));
                return;
            };
            check_count(p, items.len(), entry, errs);
            for (i, item) in items.iter().enumerate() {
                check_elem(&format!("{p}[{i}]"), item, entry, errs);
            }
        }
        "map" => {
            if !v.is_object() {
                errs.push(format!("{p}: must be a map"));
            }
        }
        "block" => {
            let items: Vec<&Value> = match v {
                Value::Object(_) => vec![v],
                Value::Array(a) => a.iter().collect(),
                _ => {
                    errs.push(format!(
                        "{p}: a block must be an object or a list of objects"
                    ));
                    return;
                }
            };
            check_count(p, items.len(), entry, errs);
            for (i, item) in items.iter().enumerate() {
                match item.as_object() {
                    Some(body) => walk_body(&format!("{p}[{i}]"), body, &entry["attributes"], errs),
                    None => errs.push(format!("{p}[{i}]: block body must be an object")),
                }
            }
        }
        other => errs.push(format!("{p}: unknown schema type {other}")),
    }
}

fn check_count(p: &str, n: usize, entry: &Value, errs: &mut Vec<String>) {
    if let Some(max) = entry["max_items"].as_u64() {
        if n as u64 > max {
            errs.push(format!("{p}: {n} items, at most {max}"));
        }
    }
    if let Some(min) = entry["min_items"].as_u64() {
        if (n as u64) < min {
            errs.push(format!("{p}: {n} items, at least {min}"));
        }
    }
}

fn check_elem(p: &str, item: &Value, entry: &Value, errs: &mut Vec<String>) {
    match &entry["elem_type"] {
        Value::String(t) if t == "object" => {
            let Some(obj) = item.as_object() else {
                errs.push(format!("{p}: must be an object"));
                return;
            };
            let attrs = entry["attributes"].as_object().cloned().unwrap_or_default();
            if entry["config_mode"] == "attr" {
                for k in attrs.keys() {
                    if !obj.contains_key(k) {
                        errs.push(format!("{p}.{k}: an attribute-list object must carry every key (null where unset)"));
                    }
                }
            }
            for (k, v) in obj {
                match attrs.get(k) {
                    Some(e) => check_value(&format!("{p}.{k}"), v, e, errs),
                    None => errs.push(format!("{p}.{k}: no such attribute")),
                }
            }
        }
        Value::String(t) => check_primitive(p, item, t, &entry["elem_validation"], errs),
        nested @ Value::Object(_) => check_value(p, item, nested, errs),
        other => errs.push(format!("{p}: unknown elem_type {other}")),
    }
}

fn check_primitive(p: &str, v: &Value, ty: &str, entry: &Value, errs: &mut Vec<String>) {
    let ok = match ty {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "bool" => v.is_boolean(),
        _ => false,
    };
    if !ok {
        errs.push(format!("{p}: must be a {ty}, got {v}"));
        return;
    }
    if entry["sdk_type"] == "TypeInt" && !(v.is_i64() || v.is_u64()) {
        errs.push(format!("{p}: TypeInt needs an integral number, got {v}"));
    }
    let validation = if entry.get("validation").is_some() {
        &entry["validation"]
    } else {
        entry
    };
    validate(p, v, validation, errs);
}

fn validate(p: &str, v: &Value, val: &Value, errs: &mut Vec<String>) {
    if let Some(any) = val.get("any_of").and_then(Value::as_array) {
        let passes = any.iter().any(|alt| {
            let mut e = Vec::new();
            validate(p, v, alt, &mut e);
            e.is_empty()
        });
        if !passes {
            errs.push(format!("{p}: {v} matches none of {}", val["any_of"]));
        }
        return;
    }
    if let Some(one_of) = val.get("one_of").and_then(Value::as_array) {
        let ic = val["ignore_case"] == true;
        let s = v.as_str().unwrap_or("");
        let hit = one_of.iter().filter_map(Value::as_str).any(|o| {
            if ic {
                o.eq_ignore_ascii_case(s)
            } else {
                o == s
            }
        });
        if !hit {
            errs.push(format!("{p}: {v} is not one of {}", val["one_of"]));
        }
    }
    if let Some(r) = val.get("int_between").and_then(Value::as_array) {
        let (lo, hi) = (
            r[0].as_i64().unwrap_or(i64::MIN),
            r[1].as_i64().unwrap_or(i64::MAX),
        );
        match v.as_i64() {
            Some(n) if (lo..=hi).contains(&n) => {}
            _ => errs.push(format!("{p}: {v} is outside {lo}..={hi}")),
        }
    }
    if let Some(re) = val.get("regex").and_then(Value::as_str) {
        let re = regex::Regex::new(re).expect("schema regex");
        if !v.as_str().is_some_and(|s| re.is_match(s)) {
            errs.push(format!("{p}: {v} does not match {re}"));
        }
    }
    if val["not_empty"] == true && v.as_str() == Some("") {
        errs.push(format!("{p}: must not be empty"));
    }
    if val["empty"] == true && v.as_str() != Some("") {
        errs.push(format!("{p}: must be empty"));
    }
}

//! Where settings come from: the compiled-in defaults, a TOML file laid over them and
//! `TRIGGER_DOCTOR__*` environment variables (and `_FILE` secrets), merged into one TOML tree
//! in which every key the defaults do not have is refused.

use toml::Value;

use super::*;

/// Lays `overlay` over `base`, refusing keys the defaults do not have.
pub(super) fn merge(base: &mut Value, overlay: Value, prefix: &str) -> Result<(), ConfigError> {
    match (base, overlay) {
        (Value::Table(base), Value::Table(overlay)) => {
            for (k, v) in overlay {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match base.get_mut(&k) {
                    Some(slot) if slot.is_table() => merge(slot, v, &key)?,
                    Some(slot) => *slot = v,
                    None => return Err(key_error(key, "unknown key")),
                }
            }
            Ok(())
        }
        (_, _) => Err(key_error(prefix, "expected a table")),
    }
}

/// Applies `TRIGGER_DOCTOR__SECTION__KEY[_FILE]` variables; the value's type follows the default's.
pub(super) fn apply_env(tree: &mut Value, env: &[(String, String)]) -> Result<(), ConfigError> {
    let mut overrides: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let lowered = rest.to_ascii_lowercase();
        let (key, from_file) = match lowered.strip_suffix("_file") {
            Some(base) if SECRET_KEYS.contains(&base.replace("__", ".").as_str()) => {
                (base.replace("__", "."), true)
            }
            _ => (lowered.replace("__", "."), false),
        };
        let slot = lookup(tree, &key).ok_or_else(|| {
            key_error(
                &key,
                format!("unknown key (from environment variable {name})"),
            )
        })?;
        let text = if from_file {
            std::fs::read_to_string(value)
                .map_err(|e| key_error(&key, format!("cannot read file named by {name}: {e}")))?
        } else {
            value.clone()
        };
        let parsed = parse_like(slot, &text, from_file).map_err(|reason| {
            key_error(&key, format!("{reason} (from environment variable {name})"))
        })?;
        overrides.insert(key, (name.clone(), parsed));
    }
    for (key, (_, value)) in overrides {
        if let Some(slot) = lookup_mut(tree, &key) {
            *slot = value;
        }
    }
    Ok(())
}

fn lookup<'a>(tree: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.')
        .try_fold(tree, |node, part| node.as_table()?.get(part))
        .filter(|v| !v.is_table())
}

fn lookup_mut<'a>(tree: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    key.split('.')
        .try_fold(tree, |node, part| node.as_table_mut()?.get_mut(part))
}

/// Parses an environment value into the same TOML type as the default in `like`.
fn parse_like(like: &Value, text: &str, from_file: bool) -> Result<Value, String> {
    match like {
        Value::String(_) => Ok(Value::String(if from_file {
            text.trim_end_matches(['\r', '\n']).to_string()
        } else {
            text.to_string()
        })),
        Value::Boolean(_) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" => Ok(Value::Boolean(false)),
            _ => Err(format!("expected true or false, got {:?}", text.trim())),
        },
        Value::Integer(_) => text
            .trim()
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("expected a whole number, got {:?}", text.trim())),
        Value::Float(_) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Value::Float)
            .ok_or_else(|| format!("expected a number, got {:?}", text.trim())),
        Value::Array(_) => {
            let separator = if from_file { '\n' } else { ',' };
            Ok(Value::Array(
                text.split(separator)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ))
        }
        _ => Err("cannot be set from the environment".into()),
    }
}

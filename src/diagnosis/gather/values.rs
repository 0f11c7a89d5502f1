//! CI/CD variable values: read at most to tell the token variable's kind and fingerprint,
//! then dropped from the facts before any check sees them.

use crate::diagnosis::{Facts, Gathered, TokenValue};
use crate::gitlab::model::Variable;

/// The kind and fingerprint of the token variable's value, where the bot could read it.
pub(super) fn token_value(facts: &Facts) -> Option<TokenValue> {
    let name = facts.target.token_variable.as_deref()?;
    let project = facts
        .subject
        .project_path
        .clone()
        .unwrap_or_else(|| facts.subject.project_id.to_string());
    let places = std::iter::once((project, &facts.project_variables))
        .chain(facts.group_variables.iter().map(|(g, v)| (g.clone(), v)));
    for (place, vars) in places {
        let found = vars
            .found()
            .and_then(|vs| vs.iter().find(|v| v.key == name && v.value.is_some()));
        if let Some(value) = found.and_then(|v| v.value.as_deref()) {
            return Some(TokenValue {
                kind: crate::redact::token_kind(value),
                fingerprint: crate::redact::fingerprint(value),
                defined_in: place,
            });
        }
    }
    None
}

/// Drops every variable value from the facts: nothing below this point may see one.
pub(super) fn forget_values(facts: &mut Facts) {
    let clear = |vars: &mut Gathered<Vec<Variable>>| {
        if let Gathered::Found(list) = vars {
            for v in list.iter_mut() {
                v.value = None;
            }
        }
    };
    clear(&mut facts.project_variables);
    clear(&mut facts.instance_variables);
    for (_, vars) in facts.group_variables.iter_mut() {
        clear(vars);
    }
}

//! Keyset pages of the trigger map's tables: the conditions that list rows in the order of an
//! index, starting after a given row, for either backend. A filter fixes some columns of the
//! order; the position is then compared on the others only, so the whole condition is a range
//! of one index and no page reads the rows before it.

/// The conditions of a page of preflight edges (none, or `WHERE ...`) and their text
/// parameters, numbered from 1 after `mark` (`?` for SQLite, `$` for PostgreSQL). They read
/// the primary key `(project, key)` in order, from the first row after `after`.
pub(super) fn edges_page(
    project: Option<&str>,
    after: Option<(String, String)>,
    mark: char,
) -> (String, Vec<String>) {
    page(
        &[("project", project), ("key", None)],
        after.map(|(project, key)| vec![project, key]),
        mark,
    )
}

/// Like [`edges_page`], for findings ordered by `(project, edge_key, cause)`: the primary key,
/// or with a cause the index on `(cause, project, edge_key)`.
pub(super) fn findings_page(
    project: Option<&str>,
    cause: Option<&str>,
    after: Option<(String, String, String)>,
    mark: char,
) -> (String, Vec<String>) {
    page(
        &[("project", project), ("edge_key", None), ("cause", cause)],
        after.map(|(project, edge_key, cause)| vec![project, edge_key, cause]),
        mark,
    )
}

/// The conditions of a page of rows ordered by `columns` (each with the value a filter fixes
/// it to, if any), after the row whose values in those columns are `after`. Values compare
/// byte by byte, as both backends compare these columns.
fn page(
    columns: &[(&str, Option<&str>)],
    after: Option<Vec<String>>,
    mark: char,
) -> (String, Vec<String>) {
    let mut params: Vec<String> = Vec::new();
    let mut next = |value: &str| {
        params.push(value.to_string());
        format!("{mark}{}", params.len())
    };
    let mut conditions: Vec<String> = columns
        .iter()
        .filter_map(|(name, fixed)| fixed.map(|value| format!("{name} = {}", next(value))))
        .collect();
    if let Some(after) = after {
        let mut rest: Vec<(&str, Option<&str>, &str)> = columns
            .iter()
            .zip(&after)
            .map(|((name, fixed), value)| (*name, *fixed, value.as_str()))
            .collect();
        // Leading fixed columns: every row listed is after the position, none is, or the
        // next column decides.
        let mut decided = None;
        while let Some(&(_, Some(fixed), value)) = rest.first() {
            match fixed.cmp(value) {
                std::cmp::Ordering::Equal => {
                    rest.remove(0);
                }
                order => {
                    decided = Some(order.is_gt());
                    break;
                }
            }
        }
        // Trailing fixed columns: whether a row equal to the position in the other columns
        // comes after it.
        let tail = rest
            .iter()
            .rposition(|(_, fixed, _)| fixed.is_none())
            .map_or(0, |last| last + 1);
        let fixed_tail: Vec<&str> = rest[tail..].iter().filter_map(|c| c.1).collect();
        let position_tail: Vec<&str> = rest[tail..].iter().map(|c| c.2).collect();
        let inclusive = fixed_tail > position_tail;
        rest.truncate(tail);
        let condition = match decided {
            Some(true) => None,
            Some(false) => Some("FALSE".to_string()),
            None if rest.is_empty() => (!inclusive).then(|| "FALSE".to_string()),
            None => {
                let names: Vec<&str> = rest.iter().map(|c| c.0).collect();
                let values: Vec<String> = rest.iter().map(|c| next(c.2)).collect();
                let op = if inclusive { ">=" } else { ">" };
                Some(format!(
                    "({}) {op} ({})",
                    names.join(", "),
                    values.join(", ")
                ))
            }
        };
        conditions.extend(condition);
    }
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (clause, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(values: &[&str]) -> Option<Vec<String>> {
        Some(values.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn the_position_is_compared_on_the_columns_no_filter_fixes() {
        let findings = |project, cause, position: &[&str]| {
            page(
                &[("project", project), ("edge_key", None), ("cause", cause)],
                after(position),
                '$',
            )
        };
        assert_eq!(
            findings(None, None, &["p", "e", "c"]),
            (
                "WHERE (project, edge_key, cause) > ($1, $2, $3)".to_string(),
                vec!["p".into(), "e".into(), "c".into()]
            )
        );
        assert_eq!(
            findings(Some("p"), None, &["p", "e", "c"]).0,
            "WHERE project = $1 AND (edge_key, cause) > ($2, $3)"
        );
        assert_eq!(
            findings(Some("q"), None, &["p", "e", "c"]).0,
            "WHERE project = $1",
            "a later project: all of it follows"
        );
        assert_eq!(
            findings(Some("o"), None, &["p", "e", "c"]).0,
            "WHERE project = $1 AND FALSE"
        );
        assert_eq!(
            findings(None, Some("d"), &["p", "e", "c"]).0,
            "WHERE cause = $1 AND (project, edge_key) >= ($2, $3)",
            "the same edge follows when the cause sorts after"
        );
        assert_eq!(
            findings(None, Some("c"), &["p", "e", "c"]).0,
            "WHERE cause = $1 AND (project, edge_key) > ($2, $3)"
        );
        assert_eq!(
            findings(Some("p"), Some("b"), &["p", "e", "c"]),
            (
                "WHERE project = $1 AND cause = $2 AND (edge_key) > ($3)".to_string(),
                vec!["p".into(), "b".into(), "e".into()]
            )
        );
        assert_eq!(edges_page(None, None, '?'), (String::new(), Vec::new()));
        assert_eq!(
            edges_page(Some("p"), Some(("p".into(), "k".into())), '?').0,
            "WHERE project = ?1 AND (key) > (?2)"
        );
    }
}

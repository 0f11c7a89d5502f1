//! What the dashboard's reads share between the backends: the SQL of a diagnosis list, built
//! from its filter so that each list reads one index in order; the overview's time bounds,
//! the SQL of its window counts and how its rows become figures; the group a trigger map is
//! cut to.
//!
//! A list names only the conditions its filter sets (no `? IS NULL OR ...`), so the planner
//! picks the index of the one that is set: `diagnosis_causes` for a cause (read newest first,
//! joined to `diagnoses` by id), `diagnoses_path` for a path, `diagnoses_project`,
//! `diagnoses_status`; without a filter, the table by id, newest first.

use std::collections::BTreeMap;

use super::{
    DayCount, DiagnosisFilter, EdgeCount, Overview, ResolutionTimes, SqlId, WindowCounts,
    OVERVIEW_DAYS, OVERVIEW_WINDOWS, TOP_EDGES,
};
use crate::ids::ProjectId;
use crate::timestamp::Timestamp;

/// Milliseconds in an hour.
const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in a day.
pub(super) const DAY_MS: i64 = 86_400_000;
/// How many days back the overview's top edges and resolution times look.
const RECENT_DAYS: i64 = 30;
// The widest window is the last 30 days: the one read of them counts every window.
const _: () = assert!(OVERVIEW_WINDOWS[OVERVIEW_WINDOWS.len() - 1] as i64 == RECENT_DAYS * 24);

/// A parameter of a diagnosis list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Param {
    Int(i64),
    Text(String),
}

/// Writes the placeholder of the `n`th parameter (from 1): `?n` for SQLite, `$n::type` for
/// PostgreSQL.
pub(super) type Mark = fn(usize, &Param) -> String;

/// The parameters of a statement being built, and their placeholders.
struct Binds {
    params: Vec<Param>,
    mark: Mark,
}

impl Binds {
    /// Adds a parameter; returns its placeholder.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        (self.mark)(self.params.len(), &self.params[self.params.len() - 1])
    }
}

/// The query of a page of diagnoses matching `filter`, newest first, `limit + 1` rows (the
/// extra one tells that another page follows), and its parameters. It reads the columns of
/// `diagnosis_columns!`, in order.
///
/// With a cause, the cause's rows of `diagnosis_causes` are read newest first (its key is
/// `(cause, diagnosis_id)`) and each joined to its diagnosis: the top cause and every confirmed
/// or likely cause are there. `CROSS JOIN` keeps SQLite from turning the loops round (and means
/// a plain join to PostgreSQL).
pub(super) fn list_sql(filter: &DiagnosisFilter, mark: Mark) -> (String, Vec<Param>) {
    let mut b = Binds {
        params: Vec::new(),
        mark,
    };
    let mut conditions: Vec<String> = Vec::new();
    let (from, id) = match &filter.cause {
        Some(cause) => {
            conditions.push(format!("c.cause = {}", b.bind(Param::Text(cause.clone()))));
            conditions.push("d.id = c.diagnosis_id".to_string());
            (
                "diagnosis_causes c CROSS JOIN diagnoses d",
                "c.diagnosis_id",
            )
        }
        None => ("diagnoses d", "d.id"),
    };
    if let Some(project) = filter.project_id() {
        conditions.push(format!("d.project_id = {}", b.bind(Param::Int(project))));
    }
    if let Some(path) = filter.project_path() {
        // The expression of the index `diagnoses_path`, compared as it is.
        conditions.push(format!(
            "lower(d.project_path) = lower({})",
            b.bind(Param::Text(path))
        ));
    }
    if let Some(pipeline) = filter.pipeline_id() {
        conditions.push(format!("d.pipeline_id = {}", b.bind(Param::Int(pipeline))));
    }
    if let Some(status) = filter.status {
        conditions.push(format!(
            "d.status = {}",
            b.bind(Param::Text(status.as_str().to_string()))
        ));
    }
    if let Some(since) = filter.since {
        conditions.push(format!("d.recorded_at >= {}", b.bind(Param::Int(since.0))));
    }
    if let Some(until) = filter.until {
        conditions.push(format!("d.recorded_at < {}", b.bind(Param::Int(until.0))));
    }
    if let Some(before) = filter.before_id {
        conditions.push(format!("{id} < {}", b.bind(Param::Int(before))));
    }
    let limit = b.bind(Param::Int(i64::from(filter.limit) + 1));
    let clause = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {} FROM {from}{clause} ORDER BY {id} DESC LIMIT {limit}",
        diagnosis_columns!()
    );
    (sql, b.params)
}

/// The times the overview's figures are counted between, as of `now` (milliseconds since
/// the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bounds {
    pub(super) now: i64,
    /// Where each window of [`OVERVIEW_WINDOWS`] starts, in their order.
    pub(super) window_starts: Vec<i64>,
    /// The first day of the causes-over-time chart (days since the epoch) ...
    pub(super) first_day: i64,
    /// ... and when it starts: nothing recorded before counts towards the chart.
    pub(super) days_from: i64,
    /// The start of the last 30 days (top edges, resolution times).
    pub(super) recent: i64,
}

impl Bounds {
    pub(super) fn new(now: Timestamp) -> Bounds {
        let now = now.0;
        let ago = |ms: i64| now.saturating_sub(ms);
        let first_day = now.div_euclid(DAY_MS) - (OVERVIEW_DAYS - 1);
        Bounds {
            now,
            window_starts: OVERVIEW_WINDOWS
                .iter()
                .map(|&hours| ago(i64::from(hours) * HOUR_MS))
                .collect(),
            first_day,
            days_from: first_day.saturating_mul(DAY_MS),
            recent: ago(RECENT_DAYS * DAY_MS),
        }
    }
}

/// The diagnoses of the last 30 days as [`Recent`] reads them, from the range of
/// `diagnoses_recorded` (which holds every column named): when, top cause, project, downstream
/// project, whether still open, project path. Parameters: the start of the last 30 days, now.
pub(super) fn recent_sql(mark: char) -> String {
    format!(
        "SELECT recorded_at, top_cause, project_id, downstream_project, status = 'open',
                project_path
           FROM diagnoses WHERE recorded_at >= {mark}1 AND recorded_at <= {mark}2"
    )
}

/// One upstream → downstream edge being counted.
struct EdgeTally {
    downstream: Option<String>,
    path: Option<String>,
    failures: u64,
    open: u64,
    last_at: i64,
}

/// The causes-over-time chart and the top failing edges, counted from one read of the last 30
/// days' diagnoses ([`recent_sql`]): one pass over an index range, with no sort and no
/// grouping in the database (two `GROUP BY`s over the same rows cost several times more).
/// Nothing is allocated per row but for a cause, edge or path seen first.
pub(super) struct Recent {
    bounds: Bounds,
    /// Diagnoses recorded in each window of [`OVERVIEW_WINDOWS`].
    diagnosed: Vec<u64>,
    causes: Vec<String>,
    /// (day offset from the chart's first midnight, index in `causes`) → diagnoses.
    days: BTreeMap<(i64, usize), u64>,
    /// Project id → its edges.
    edges: std::collections::HashMap<i64, Vec<EdgeTally>>,
}

impl Recent {
    pub(super) fn new(bounds: &Bounds) -> Recent {
        Recent {
            bounds: bounds.clone(),
            diagnosed: vec![0; bounds.window_starts.len()],
            causes: Vec::new(),
            days: BTreeMap::new(),
            edges: std::collections::HashMap::new(),
        }
    }

    /// Counts one diagnosis recorded at `recorded_at` (within the last 30 days).
    pub(super) fn add(
        &mut self,
        recorded_at: i64,
        cause: &str,
        project_id: i64,
        downstream: Option<&str>,
        open: bool,
        path: Option<&str>,
    ) {
        let b = &self.bounds;
        for (n, start) in self.diagnosed.iter_mut().zip(&b.window_starts) {
            *n += u64::from(recorded_at >= *start);
        }
        if recorded_at >= b.days_from {
            let i = match self.causes.iter().position(|c| c == cause) {
                Some(i) => i,
                None => {
                    self.causes.push(cause.to_string());
                    self.causes.len() - 1
                }
            };
            *self
                .days
                .entry(((recorded_at - b.days_from) / DAY_MS, i))
                .or_default() += 1;
        }
        let edges = self.edges.entry(project_id).or_default();
        let at = match edges
            .iter()
            .position(|e| e.downstream.as_deref() == downstream)
        {
            Some(at) => at,
            None => {
                edges.push(EdgeTally {
                    downstream: downstream.map(str::to_string),
                    path: None,
                    failures: 0,
                    open: 0,
                    last_at: recorded_at,
                });
                edges.len() - 1
            }
        };
        let e = &mut edges[at];
        e.failures += 1;
        e.open += u64::from(open);
        e.last_at = e.last_at.max(recorded_at);
        // The greatest path, as `MAX(project_path)` compares: byte by byte.
        if let Some(path) = path {
            if e.path.as_deref().is_none_or(|p| path > p) {
                e.path = Some(path.to_string());
            }
        }
    }

    /// The overview: these diagnoses' window counts, chart days (by day, then cause) and top
    /// edges (most failures first, then the latest failure, the project id and the downstream
    /// project, none first; at most [`TOP_EDGES`]), with the rows of [`resolutions_sql`] and
    /// the parked count.
    pub(super) fn overview(self, resolutions: Vec<ResolutionRow>, parked: i64) -> Overview {
        let b = &self.bounds;
        let mut resolved = vec![0u64; b.window_starts.len()];
        for r in &resolutions {
            for (n, start) in resolved.iter_mut().zip(&b.window_starts) {
                if r.at >= *start {
                    *n += r.diagnoses as u64;
                }
            }
        }
        let windows = OVERVIEW_WINDOWS
            .iter()
            .zip(self.diagnosed.iter().zip(resolved))
            .map(|(&hours, (&diagnosed, resolved))| WindowCounts {
                hours,
                diagnosed,
                resolved,
            })
            .collect();
        let mut days: Vec<DayCount> = self
            .days
            .into_iter()
            .map(|((offset, i), count)| DayCount {
                day: self.bounds.first_day + offset,
                cause: self.causes[i].clone(),
                count,
            })
            .collect();
        days.sort_by(|x, y| x.day.cmp(&y.day).then_with(|| x.cause.cmp(&y.cause)));
        let mut edges: Vec<(i64, EdgeTally)> = self
            .edges
            .into_iter()
            .flat_map(|(id, tallies)| tallies.into_iter().map(move |t| (id, t)))
            .collect();
        edges.sort_by(|(xi, x), (yi, y)| {
            y.failures
                .cmp(&x.failures)
                .then(y.last_at.cmp(&x.last_at))
                .then(xi.cmp(yi))
                .then_with(|| x.downstream.cmp(&y.downstream))
        });
        let top = edges
            .into_iter()
            .take(TOP_EDGES as usize)
            .map(|(id, t)| EdgeCount {
                project_id: ProjectId::from_sql(id),
                project_path: t.path,
                downstream: t.downstream,
                failures: t.failures,
                open: t.open,
                last_at: Timestamp(t.last_at),
            })
            .collect();
        Overview {
            windows,
            days,
            top_edges: top,
            resolution: resolution_times(resolutions.into_iter().map(|r| (r.cause, r.millis))),
            parked: parked.max(0) as u64,
        }
    }
}

/// One resolution: a comment target (a diagnosis without one stands alone), the pipeline that
/// resolved it and a top cause.
pub(super) struct ResolutionRow {
    pub(super) cause: String,
    /// From the first failure to the resolution.
    pub(super) millis: i64,
    /// When it was resolved.
    pub(super) at: i64,
    /// How many diagnoses it resolved.
    pub(super) diagnoses: i64,
}

/// The rows of [`ResolutionRow`] resolved between the start of the last 30 days (the widest
/// window) and now, from the range of `diagnoses_resolved`: cause, milliseconds, when,
/// diagnoses.
pub(super) fn resolutions_sql(mark: char) -> String {
    format!(
        "SELECT top_cause, MAX(resolved_at) - MIN(recorded_at), MAX(resolved_at), COUNT(*)
           FROM diagnoses WHERE resolved_at >= {mark}1 AND resolved_at <= {mark}2
          GROUP BY target, CASE WHEN target IS NULL THEN id END, resolved_pipeline_id, top_cause"
    )
}

/// Resolution times by cause, causes in order and each cause's times ascending, from rows of
/// `(cause, milliseconds)`.
pub(super) fn resolution_times(
    rows: impl IntoIterator<Item = (String, i64)>,
) -> Vec<ResolutionTimes> {
    let mut by_cause: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (cause, millis) in rows {
        by_cause.entry(cause).or_default().push(millis);
    }
    by_cause
        .into_iter()
        .map(|(cause, mut millis)| {
            millis.sort_unstable();
            ResolutionTimes { cause, millis }
        })
        .collect()
}

/// The group a trigger map is cut to, as compared: without trailing slashes, `None` (the whole
/// map) when nothing is left.
pub(super) fn map_group(group: Option<&str>) -> Option<String> {
    group
        .map(|g| g.trim_end_matches('/'))
        .filter(|g| !g.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ProjectFilter;

    fn sqlite_mark(n: usize, _: &Param) -> String {
        format!("?{n}")
    }

    #[test]
    fn a_list_names_only_the_conditions_its_filter_sets() {
        let (sql, params) = list_sql(&DiagnosisFilter::default(), sqlite_mark);
        assert!(
            sql.ends_with("FROM diagnoses d ORDER BY d.id DESC LIMIT ?1"),
            "{sql}"
        );
        assert_eq!(params, vec![Param::Int(51)]);
        let filter = DiagnosisFilter {
            cause: Some("token.expired".into()),
            project: Some(ProjectFilter::Path("Grp/App".into())),
            until: Some(Timestamp(7)),
            before_id: Some(9),
            limit: 10,
            ..DiagnosisFilter::default()
        };
        let (sql, params) = list_sql(&filter, sqlite_mark);
        assert!(
            sql.ends_with(
                "FROM diagnosis_causes c CROSS JOIN diagnoses d WHERE c.cause = ?1 \
                 AND d.id = c.diagnosis_id AND lower(d.project_path) = lower(?2) \
                 AND d.recorded_at < ?3 AND c.diagnosis_id < ?4 \
                 ORDER BY c.diagnosis_id DESC LIMIT ?5"
            ),
            "{sql}"
        );
        assert_eq!(
            params,
            vec![
                Param::Text("token.expired".into()),
                Param::Text("Grp/App".into()),
                Param::Int(7),
                Param::Int(9),
                Param::Int(11),
            ]
        );
    }

    #[test]
    fn bounds_count_whole_utc_days_and_windows_back_from_now() {
        // 2024-03-10 13:00 UTC.
        let now = 19_792 * DAY_MS + 13 * HOUR_MS;
        let b = Bounds::new(Timestamp(now));
        assert_eq!(b.first_day, 19_792 - 29);
        assert_eq!(b.days_from, (19_792 - 29) * DAY_MS);
        assert_eq!(
            b.window_starts,
            vec![now - DAY_MS, now - 7 * DAY_MS, now - 30 * DAY_MS]
        );
        assert_eq!(b.recent, now - 30 * DAY_MS);
        // Before the epoch, days still start at midnight.
        assert_eq!(Bounds::new(Timestamp(-1)).first_day, -1 - 29);
    }

    #[test]
    fn groups_lose_trailing_slashes_and_an_empty_one_is_the_whole_map() {
        assert_eq!(map_group(Some("grp/sub/")), Some("grp/sub".into()));
        assert_eq!(map_group(Some("/")), None);
        assert_eq!(map_group(None), None);
    }
}

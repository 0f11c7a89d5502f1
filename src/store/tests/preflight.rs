//! Behaviour tests of preflight sweeps and the trigger map's rows, on every backend like the
//! tests beside them.

use super::*;

backend_tests![
    one_owner_sweeps_at_a_time_and_another_resumes_after_the_lease,
    concurrent_claims_start_or_resume_one_sweep,
    replacing_a_project_keeps_first_seen_and_tells_what_changed,
    projects_out_of_scope_are_removed_and_their_findings_resolved,
    edges_and_findings_page_by_keyset_and_filter,
    preflight_counts_count_edges_causes_and_nearest_expiry,
    the_map_of_a_group_holds_its_projects_and_their_edges_findings,
    expiring_findings_come_soonest_first_within_their_bounds,
];

const HOUR: Duration = Duration::from_secs(3600);

fn edge(project: &str, key: &str, to: Option<&str>) -> PreflightEdgeRow {
    PreflightEdgeRow {
        project: project.into(),
        key: key.into(),
        to: to.map(str::to_string),
        json: format!("{{\"edge\":\"{project} {key}\"}}"),
    }
}

fn finding(project: &str, edge_key: &str, cause: &str, verdict: &str) -> PreflightFindingRow {
    PreflightFindingRow {
        project: project.into(),
        edge_key: edge_key.into(),
        cause: cause.into(),
        verdict: verdict.into(),
        json: format!("{{\"finding\":\"{cause} {verdict}\"}}"),
        first_seen: Timestamp(0),
        expires_at: None,
    }
}

fn expiring(f: PreflightFindingRow, at: Timestamp) -> PreflightFindingRow {
    PreflightFindingRow {
        expires_at: Some(at),
        ..f
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The `(project, edge_key, cause)` of each finding.
fn identities(findings: &[PreflightFindingRow]) -> Vec<(String, String, String)> {
    findings
        .iter()
        .map(|f| (f.project.clone(), f.edge_key.clone(), f.cause.clone()))
        .collect()
}

async fn one_owner_sweeps_at_a_time_and_another_resumes_after_the_lease(db: TestDb) {
    let clock = TestClock::new();
    let s = db.open_with(&clock).await;
    assert_eq!(s.last_sweep().await.unwrap(), None);
    let first = s.claim_sweep("a", LEASE, HOUR).await.unwrap().unwrap();
    assert_eq!(
        (first.cursor, first.state.as_str(), first.resumed),
        (0, "", false)
    );
    assert_eq!((first.owner.as_str(), first.started_at), ("a", clock.now()));
    assert_eq!(s.claim_sweep("b", LEASE, HOUR).await.unwrap(), None);
    assert!(s
        .sweep_progress(&first, 7, "{\"next\":\"grp/c\"}", LEASE)
        .await
        .unwrap());
    // Its own owner (restarted) takes it up where it stood.
    let again = s.claim_sweep("a", LEASE, HOUR).await.unwrap().unwrap();
    assert_eq!((again.id, again.cursor, again.resumed), (first.id, 7, true));
    // Another owner waits while the lease runs, and takes over once it has ended.
    clock.advance(LEASE - Duration::from_millis(1));
    assert_eq!(s.claim_sweep("b", LEASE, HOUR).await.unwrap(), None);
    clock.advance(Duration::from_millis(1));
    let taken = s.claim_sweep("b", LEASE, HOUR).await.unwrap().unwrap();
    assert_eq!(
        taken,
        SweepClaim {
            id: first.id,
            owner: "b".into(),
            cursor: 7,
            state: "{\"next\":\"grp/c\"}".into(),
            started_at: first.started_at,
            resumed: true,
        }
    );
    assert!(!s.sweep_progress(&first, 9, "lost", LEASE).await.unwrap());
    assert!(!s.finish_sweep(&again).await.unwrap());
    let running = s.last_sweep().await.unwrap().unwrap();
    assert_eq!(
        (running.id, running.owner.as_str(), running.finished_at),
        (first.id, "b", None)
    );
    // What the lost owner tried to save was not saved.
    clock.advance(LEASE);
    let resumed = s.claim_sweep("c", LEASE, HOUR).await.unwrap().unwrap();
    assert_eq!(
        (resumed.cursor, resumed.state.as_str()),
        (7, "{\"next\":\"grp/c\"}")
    );
    assert!(s.sweep_progress(&resumed, 12, "end", LEASE).await.unwrap());
    assert!(s.finish_sweep(&resumed).await.unwrap());
    assert!(!s.finish_sweep(&resumed).await.unwrap(), "finished once");
    assert!(!s.sweep_progress(&resumed, 13, "x", LEASE).await.unwrap());
    let finished = s.last_sweep().await.unwrap().unwrap();
    assert_eq!(
        (finished.id, finished.owner.as_str(), finished.finished_at),
        (first.id, "c", Some(clock.now()))
    );
    // The next sweep starts once the interval has passed since the last one finished.
    assert_eq!(s.claim_sweep("a", LEASE, HOUR).await.unwrap(), None);
    clock.advance(HOUR - Duration::from_millis(1));
    assert_eq!(s.claim_sweep("a", LEASE, HOUR).await.unwrap(), None);
    clock.advance(Duration::from_millis(1));
    let next = s.claim_sweep("a", LEASE, HOUR).await.unwrap().unwrap();
    assert!(next.id > first.id);
    assert_eq!(
        (next.cursor, next.state.as_str(), next.resumed),
        (0, "", false)
    );
    assert_eq!(s.last_sweep().await.unwrap().unwrap().id, next.id);
}

async fn concurrent_claims_start_or_resume_one_sweep(db: TestDb) {
    let clock = TestClock::new();
    // SQLite is one process's store; PostgreSQL is shared by replicas.
    let replicas = match &db {
        TestDb::Sqlite { .. } => {
            let s = db.open_with(&clock).await;
            [s.clone(), s]
        }
        TestDb::Postgres { .. } => [db.open_with(&clock).await, db.open_with(&clock).await],
    };
    let race = |round: usize| {
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let mut claims = tokio::task::JoinSet::new();
        for i in 0..8 {
            let (s, barrier) = (replicas[i % 2].clone(), barrier.clone());
            claims.spawn(async move {
                barrier.wait().await;
                s.claim_sweep(&format!("r{}/{round}/{i}", i % 2), LEASE, Duration::ZERO)
                    .await
                    .unwrap()
            });
        }
        claims
    };
    let mut ids = Vec::new();
    for round in 0..10 {
        let mut claims = race(round);
        let mut won = Vec::new();
        while let Some(claim) = claims.join_next().await {
            won.extend(claim.unwrap());
        }
        assert_eq!(won.len(), 1, "one sweep started in round {round}");
        let claim = won.remove(0);
        if round % 2 == 0 {
            assert!(!claim.resumed);
            ids.push(claim.id);
            // Left unfinished: the next round races to take it over once its lease ends.
            clock.advance(LEASE);
        } else {
            assert!(claim.resumed, "round {round} took over the left sweep");
            assert_eq!(Some(&claim.id), ids.last());
            assert!(replicas[0].finish_sweep(&claim).await.unwrap());
        }
    }
    assert_eq!(ids.len(), 5);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "a new sweep every other round"
    );
}

async fn replacing_a_project_keeps_first_seen_and_tells_what_changed(db: TestDb) {
    let clock = TestClock::new();
    let s = db.open_with(&clock).await;
    let t0 = clock.now();
    let changes = s
        .replace_preflight_project(
            "grp/a",
            vec![
                edge("grp/a", "deploy", Some("grp/x")),
                edge("grp/a", "docs", None),
            ],
            vec![
                finding("grp/a", "deploy", "token.expired", "likely"),
                finding("grp/a", "deploy", "project.not_found", "confirmed"),
                finding("grp/a", "docs", "variable.missing", "likely"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        changes,
        FindingChanges {
            new: pairs(&[
                ("deploy", "project.not_found"),
                ("deploy", "token.expired"),
                ("docs", "variable.missing"),
            ]),
            resolved: Vec::new(),
            kept: 0,
        }
    );
    let other_edges = vec![edge("grp/b", "deploy", Some("grp/a"))];
    let other_findings = vec![finding("grp/b", "deploy", "token.expired", "likely")];
    s.replace_preflight_project("grp/b", other_edges.clone(), other_findings.clone())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let t1 = clock.now();
    let mut renewed = edge("grp/a", "deploy", Some("grp/y"));
    renewed.json = "{\"edge\":\"renewed\"}".into();
    let mut confirmed = finding("grp/a", "deploy", "token.expired", "confirmed");
    confirmed.first_seen = t1;
    let changes = s
        .replace_preflight_project(
            "grp/a",
            // Of two rows with one identity the last counts; rows are kept under the project.
            vec![edge("grp/a", "deploy", None), renewed],
            vec![
                finding("grp/a", "deploy", "token.expired", "likely"),
                confirmed,
                finding("elsewhere", "docs", "trigger.forbidden", "likely"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        changes,
        FindingChanges {
            new: pairs(&[("docs", "trigger.forbidden")]),
            resolved: vec![
                (
                    "deploy".into(),
                    "project.not_found".into(),
                    "{\"finding\":\"project.not_found confirmed\"}".into()
                ),
                (
                    "docs".into(),
                    "variable.missing".into(),
                    "{\"finding\":\"variable.missing likely\"}".into()
                ),
            ],
            kept: 1,
        }
    );
    let edges = s
        .list_preflight_edges(Some("grp/a"), None, 10)
        .await
        .unwrap();
    assert_eq!(
        edges,
        vec![PreflightEdgeRow {
            project: "grp/a".into(),
            key: "deploy".into(),
            to: Some("grp/y".into()),
            json: "{\"edge\":\"renewed\"}".into(),
        }]
    );
    let findings = s
        .list_preflight_findings(Some("grp/a"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        findings,
        vec![
            PreflightFindingRow {
                first_seen: t0,
                ..finding("grp/a", "deploy", "token.expired", "confirmed")
            },
            PreflightFindingRow {
                first_seen: t1,
                ..finding("grp/a", "docs", "trigger.forbidden", "likely")
            },
        ]
    );
    // The other project's rows are as they were.
    assert_eq!(
        s.list_preflight_edges(Some("grp/b"), None, 10)
            .await
            .unwrap(),
        other_edges
    );
    assert_eq!(
        s.list_preflight_findings(Some("grp/b"), None, None, 10)
            .await
            .unwrap(),
        vec![PreflightFindingRow {
            first_seen: t0,
            ..other_findings[0].clone()
        }]
    );
    // Replacing with nothing resolves everything the project had.
    let changes = s
        .replace_preflight_project("grp/a", Vec::new(), Vec::new())
        .await
        .unwrap();
    assert_eq!(
        (changes.new.len(), changes.resolved.len(), changes.kept),
        (0, 2, 0)
    );
    assert!(s
        .list_preflight_edges(Some("grp/a"), None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn projects_out_of_scope_are_removed_and_their_findings_resolved(db: TestDb) {
    let s = db.open().await;
    for project in ["grp/a", "grp/b", "grp/c"] {
        s.replace_preflight_project(
            project,
            vec![edge(project, "deploy", None)],
            vec![
                finding(project, "deploy", "token.expired", "likely"),
                finding(project, "deploy", "network.dns", "likely"),
            ],
        )
        .await
        .unwrap();
    }
    let changes = s
        .remove_preflight_projects_not_in(&["grp/b".to_string(), "grp/z".to_string()])
        .await
        .unwrap();
    let resolved: Vec<(String, String)> = changes
        .resolved
        .iter()
        .map(|(e, c, _)| (e.clone(), c.clone()))
        .collect();
    // grp/a's two findings, then grp/c's.
    assert_eq!(
        resolved,
        pairs(&[
            ("deploy", "network.dns"),
            ("deploy", "token.expired"),
            ("deploy", "network.dns"),
            ("deploy", "token.expired"),
        ])
    );
    assert_eq!(
        changes.resolved[0].2,
        "{\"finding\":\"network.dns likely\"}"
    );
    assert_eq!((changes.new.len(), changes.kept), (0, 2));
    let edges = s.list_preflight_edges(None, None, 10).await.unwrap();
    assert_eq!(edges, vec![edge("grp/b", "deploy", None)]);
    let findings = s
        .list_preflight_findings(None, None, None, 10)
        .await
        .unwrap();
    assert!(findings.iter().all(|f| f.project == "grp/b"));
    assert_eq!(findings.len(), 2);
    // Nothing more to remove.
    let again = s
        .remove_preflight_projects_not_in(&["grp/b".to_string()])
        .await
        .unwrap();
    assert_eq!(
        again,
        FindingChanges {
            kept: 2,
            ..FindingChanges::default()
        }
    );
    // No project in scope: everything goes.
    let changes = s.remove_preflight_projects_not_in(&[]).await.unwrap();
    assert_eq!((changes.resolved.len(), changes.kept), (2, 0));
    assert!(s
        .list_preflight_edges(None, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.preflight_counts().await.unwrap(),
        PreflightCounts::default()
    );
}

/// Every page of up to `limit` rows from `fetch`, each starting after the last row of the one
/// before, joined.
async fn all_pages<T, A, F, Fut>(limit: u32, after: impl Fn(&T) -> A, fetch: F) -> Vec<T>
where
    F: Fn(Option<A>, u32) -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let page = fetch(cursor.take(), limit).await;
        assert!(page.len() <= limit as usize);
        let done = page.len() < limit as usize;
        cursor = page.last().map(&after);
        rows.extend(page);
        if done {
            return rows;
        }
    }
}

async fn edges_and_findings_page_by_keyset_and_filter(db: TestDb) {
    let s = db.open().await;
    // Names that sort differently byte by byte than in most locales.
    let projects = ["grp/a", "grp/a-b", "grp/a/c", "Grp/Z"];
    let causes = ["token.expired", "network.dns", "project.not_found"];
    let mut all_edges = Vec::new();
    let mut all_findings = Vec::new();
    for (p, project) in projects.iter().enumerate() {
        let edges: Vec<PreflightEdgeRow> = ["deploy", "Docs", "docs-2", "e"]
            .iter()
            .take(p + 1)
            .map(|key| edge(project, key, Some("grp/down")))
            .collect();
        let findings: Vec<PreflightFindingRow> = edges
            .iter()
            .enumerate()
            .flat_map(|(e, edge)| {
                causes
                    .iter()
                    .skip(e % 3)
                    .map(|cause| finding(project, &edge.key, cause, "likely"))
            })
            .collect();
        all_edges.extend(edges.clone());
        all_findings.extend(findings.clone());
        s.replace_preflight_project(project, edges, findings)
            .await
            .unwrap();
    }
    all_edges.sort_by(|a, b| (&a.project, &a.key).cmp(&(&b.project, &b.key)));
    let mut expected = identities(&all_findings);
    expected.sort();
    let edge_after = |e: &PreflightEdgeRow| (e.project.clone(), e.key.clone());
    let finding_after =
        |f: &PreflightFindingRow| (f.project.clone(), f.edge_key.clone(), f.cause.clone());
    for limit in [1, 2, 3, 100] {
        let edges = all_pages(limit, edge_after, |after, limit| {
            let s = s.clone();
            async move { s.list_preflight_edges(None, after, limit).await.unwrap() }
        })
        .await;
        assert_eq!(edges, all_edges, "edges in pages of {limit}");
        let edges = all_pages(limit, edge_after, |after, limit| {
            let s = s.clone();
            async move {
                s.list_preflight_edges(Some("grp/a/c"), after, limit)
                    .await
                    .unwrap()
            }
        })
        .await;
        let keys: Vec<&str> = edges.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, vec!["Docs", "deploy", "docs-2"]);
        assert!(edges.iter().all(|e| e.project == "grp/a/c"));
        for project in [None, Some("grp/a-b"), Some("nobody")] {
            for cause in [None, Some("network.dns"), Some("project.not_found")] {
                let found = all_pages(limit, finding_after, |after, limit| {
                    let s = s.clone();
                    async move {
                        s.list_preflight_findings(project, cause, after, limit)
                            .await
                            .unwrap()
                    }
                })
                .await;
                let wanted: Vec<_> = expected
                    .iter()
                    .filter(|(p, _, c)| {
                        project.is_none_or(|want| p == want) && cause.is_none_or(|want| c == want)
                    })
                    .cloned()
                    .collect();
                assert_eq!(
                    identities(&found),
                    wanted,
                    "findings of {project:?} with {cause:?} in pages of {limit}"
                );
            }
        }
    }
    // A position taken from another listing still means "after this row" with a cause filter.
    let after = ("grp/a-b".to_string(), "Docs".to_string(), "a".to_string());
    let found = s
        .list_preflight_findings(None, Some("project.not_found"), Some(after), 2)
        .await
        .unwrap();
    assert_eq!(
        identities(&found),
        vec![
            ("grp/a-b".into(), "Docs".into(), "project.not_found".into()),
            (
                "grp/a-b".into(),
                "deploy".into(),
                "project.not_found".into()
            ),
        ]
    );
    let after = ("grp/a-b".to_string(), "Docs".to_string(), "z".to_string());
    let found = s
        .list_preflight_findings(None, Some("project.not_found"), Some(after), 1)
        .await
        .unwrap();
    assert_eq!(
        identities(&found),
        vec![(
            "grp/a-b".into(),
            "deploy".into(),
            "project.not_found".into()
        )]
    );
}

async fn preflight_counts_count_edges_causes_and_nearest_expiry(db: TestDb) {
    let s = db.open().await;
    assert_eq!(
        s.preflight_counts().await.unwrap(),
        PreflightCounts::default()
    );
    let (soon, later) = (Timestamp(1_700_000_000_000), Timestamp(1_800_000_000_000));
    s.replace_preflight_project(
        "grp/a",
        vec![
            edge("grp/a", "deploy", None),
            edge("grp/a", "docs", None),
            edge("grp/a", "lint", None),
        ],
        vec![
            expiring(finding("grp/a", "deploy", "token.expired", "likely"), later),
            expiring(
                finding("grp/a", "deploy", "token.expiring", "confirmed"),
                soon,
            ),
            finding("grp/a", "deploy", "network.dns", "likely"),
            finding("grp/a", "docs", "network.dns", "likely"),
        ],
    )
    .await
    .unwrap();
    s.replace_preflight_project(
        "grp/b",
        vec![edge("grp/b", "deploy", None)],
        vec![expiring(
            finding("grp/b", "deploy", "token.expired", "likely"),
            later,
        )],
    )
    .await
    .unwrap();
    assert_eq!(
        s.preflight_counts().await.unwrap(),
        PreflightCounts {
            edges: 4,
            findings_by_cause: vec![
                ("network.dns".into(), 2),
                ("token.expired".into(), 2),
                ("token.expiring".into(), 1),
            ],
            nearest_expiry: vec![
                ("grp/a".into(), "deploy".into(), soon),
                ("grp/b".into(), "deploy".into(), later),
            ],
        }
    );
}

/// The `(project, key)` of each edge.
fn edge_keys(edges: &[PreflightEdgeRow]) -> Vec<(String, String)> {
    edges
        .iter()
        .map(|e| (e.project.clone(), e.key.clone()))
        .collect()
}

fn triples(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

async fn the_map_of_a_group_holds_its_projects_and_their_edges_findings(db: TestDb) {
    let s = db.open().await;
    // Two edges with findings in `grp`; one edge with one finding in each other project.
    s.replace_preflight_project(
        "grp",
        vec![edge("grp", "b", None), edge("grp", "a", Some("grp/down"))],
        vec![
            finding("grp", "a", "token.expired", "likely"),
            finding("grp", "a", "network.dns", "confirmed"),
            finding("grp", "b", "project.not_found", "likely"),
        ],
    )
    .await
    .unwrap();
    for project in [
        "grp/sub",
        "grp/sub/deep",
        "GRP/Upper",
        "grp2",
        "grp2/x",
        "grpx",
        "gr_p",
        "gr_p/x",
        "grXp",
        "gr%p/x",
        "grabcp",
        "other/grp",
    ] {
        s.replace_preflight_project(
            project,
            vec![edge(project, "deploy", None)],
            vec![finding(project, "deploy", "token.expired", "likely")],
        )
        .await
        .unwrap();
    }
    let map = |group: Option<&'static str>, limit| {
        let s = s.clone();
        async move { s.preflight_map(group, limit).await.unwrap() }
    };
    // The group itself and what lies under it, whatever the case; not `grp2` nor `grpx`.
    let (edges, findings) = map(Some("grp"), 100).await;
    assert_eq!(
        edge_keys(&edges),
        pairs(&[
            ("GRP/Upper", "deploy"),
            ("grp", "a"),
            ("grp", "b"),
            ("grp/sub", "deploy"),
            ("grp/sub/deep", "deploy"),
        ])
    );
    assert_eq!(edges[1].to.as_deref(), Some("grp/down"));
    assert_eq!(edges[1].json, "{\"edge\":\"grp a\"}");
    assert_eq!(
        identities(&findings),
        triples(&[
            ("GRP/Upper", "deploy", "token.expired"),
            ("grp", "a", "network.dns"),
            ("grp", "a", "token.expired"),
            ("grp", "b", "project.not_found"),
            ("grp/sub", "deploy", "token.expired"),
            ("grp/sub/deep", "deploy", "token.expired"),
        ])
    );
    assert_eq!(findings[1].verdict, "confirmed");
    // A subgroup, written in another case and with a trailing slash.
    let (edges, _) = map(Some("GRP/SUB/"), 100).await;
    assert_eq!(
        edge_keys(&edges),
        pairs(&[("grp/sub", "deploy"), ("grp/sub/deep", "deploy")])
    );
    // `_` and `%` are characters of the name, not wildcards.
    let (edges, findings) = map(Some("gr_p"), 100).await;
    assert_eq!(
        edge_keys(&edges),
        pairs(&[("gr_p", "deploy"), ("gr_p/x", "deploy")])
    );
    assert_eq!(findings.len(), 2);
    let (edges, _) = map(Some("gr%p"), 100).await;
    assert_eq!(edge_keys(&edges), pairs(&[("gr%p/x", "deploy")]));
    let (edges, _) = map(Some("grp2"), 100).await;
    assert_eq!(
        edge_keys(&edges),
        pairs(&[("grp2", "deploy"), ("grp2/x", "deploy")])
    );
    assert_eq!(map(Some("gr"), 100).await, (Vec::new(), Vec::new()));
    // At most `limit` edges, in order, and only their findings.
    let (edges, findings) = map(Some("grp"), 2).await;
    assert_eq!(
        edge_keys(&edges),
        pairs(&[("GRP/Upper", "deploy"), ("grp", "a")])
    );
    assert_eq!(
        identities(&findings),
        triples(&[
            ("GRP/Upper", "deploy", "token.expired"),
            ("grp", "a", "network.dns"),
            ("grp", "a", "token.expired"),
        ])
    );
    // Without a group, the whole map.
    let (edges, findings) = map(None, 100).await;
    assert_eq!((edges.len(), findings.len()), (14, 15));
    let (edges, findings) = map(None, 1).await;
    assert_eq!(edge_keys(&edges), pairs(&[("GRP/Upper", "deploy")]));
    assert_eq!(findings.len(), 1);
}

async fn expiring_findings_come_soonest_first_within_their_bounds(db: TestDb) {
    let clock = TestClock::new();
    let s = db.open_with(&clock).await;
    let now = clock.now().0;
    let at = |hours: i64| Timestamp(now + hours * 3_600_000);
    s.replace_preflight_project(
        "grp/b",
        vec![edge("grp/b", "deploy", None)],
        vec![
            expiring(
                finding("grp/b", "deploy", "token.expired", "likely"),
                at(-1),
            ),
            expiring(
                finding("grp/b", "deploy", "token.expiring", "likely"),
                at(2),
            ),
            expiring(finding("grp/b", "deploy", "key.expiring", "likely"), at(0)),
            expiring(
                finding("grp/b", "deploy", "cert.expiring", "likely"),
                at(24),
            ),
            finding("grp/b", "deploy", "network.dns", "likely"),
        ],
    )
    .await
    .unwrap();
    s.replace_preflight_project(
        "grp/a",
        vec![edge("grp/a", "deploy", None), edge("grp/a", "lint", None)],
        vec![
            expiring(finding("grp/a", "lint", "token.expiring", "likely"), at(2)),
            expiring(
                finding("grp/a", "deploy", "token.expiring", "likely"),
                at(2),
            ),
            expiring(finding("grp/a", "deploy", "key.expiring", "likely"), at(23)),
        ],
    )
    .await
    .unwrap();
    let expiring = |within: i64, limit| {
        let s = s.clone();
        async move {
            s.expiring_findings(Duration::from_secs(within as u64 * 3600), limit)
                .await
                .unwrap()
        }
    };
    // From now (included) to a day from now (excluded), soonest first; one instant in the
    // order of project, edge and cause.
    let found = expiring(24, 10).await;
    assert_eq!(
        identities(&found),
        triples(&[
            ("grp/b", "deploy", "key.expiring"),
            ("grp/a", "deploy", "token.expiring"),
            ("grp/a", "lint", "token.expiring"),
            ("grp/b", "deploy", "token.expiring"),
            ("grp/a", "deploy", "key.expiring"),
        ])
    );
    let expires: Vec<Option<Timestamp>> = found.iter().map(|f| f.expires_at).collect();
    assert_eq!(
        expires,
        vec![
            Some(at(0)),
            Some(at(2)),
            Some(at(2)),
            Some(at(2)),
            Some(at(23))
        ]
    );
    assert_eq!(found[0].first_seen, clock.now());
    assert_eq!(found[0].json, "{\"finding\":\"key.expiring likely\"}");
    assert_eq!(
        identities(&expiring(24, 2).await),
        triples(&[
            ("grp/b", "deploy", "key.expiring"),
            ("grp/a", "deploy", "token.expiring"),
        ])
    );
    assert_eq!(expiring(25, 10).await.len(), 6, "the one at 24 hours too");
    // Later the first ones have run out and are left out.
    clock.advance(Duration::from_secs(3 * 3600));
    assert_eq!(
        identities(&expiring(24, 10).await),
        triples(&[
            ("grp/a", "deploy", "key.expiring"),
            ("grp/b", "deploy", "cert.expiring"),
        ])
    );
}

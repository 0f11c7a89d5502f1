//! Behaviour tests shared by every backend, so SQLite and PostgreSQL stay alike: each test
//! runs against SQLite always, and against PostgreSQL when `TRIGGER_DOCTOR_TEST_POSTGRES_URL`
//! names a server (each test then gets a schema of its own, dropped afterwards). Without the
//! variable the PostgreSQL variants say they were skipped and pass. Those of preflight sweeps
//! and the trigger map are in `tests/preflight.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::ids::{NoteId, PipelineId, ProjectId};

/// The environment variable naming a PostgreSQL server for the tests.
pub(crate) const POSTGRES_URL_VAR: &str = "TRIGGER_DOCTOR_TEST_POSTGRES_URL";

/// A fresh, empty store location for one test; removed when dropped.
pub(crate) enum TestDb {
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        base: String,
        schema: String,
    },
}

impl TestDb {
    pub(crate) fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("td.db").display());
        TestDb::Sqlite { url, _dir: dir }
    }

    /// A new schema on the test server; `None` (after saying so) when none is configured.
    pub(crate) async fn postgres(test: &str) -> Option<TestDb> {
        let Some(base) = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            println!("skipped {test}: {POSTGRES_URL_VAR} is not set");
            return None;
        };
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let schema = format!(
            "td_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        admin(&base, &format!("CREATE SCHEMA {schema}")).await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url =
            format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}");
        Some(TestDb::Postgres { url, base, schema })
    }

    pub(crate) fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    pub(crate) async fn open(&self) -> Store {
        Store::open(self.url()).await.unwrap()
    }

    /// The store reading the time from `clock`.
    async fn open_with(&self, clock: &TestClock) -> Store {
        self.open().await.with_clock(clock.clock())
    }
}

/// A clock the test moves on by hand, so no test waits for time to pass.
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    /// Starts a second ahead of the wall clock, so deliveries made with the wall clock's
    /// time (see [`delivery`]) are due.
    fn new() -> TestClock {
        TestClock(Arc::new(AtomicI64::new(Timestamp::now().0 + 1_000)))
    }

    fn clock(&self) -> Clock {
        let now = self.0.clone();
        Arc::new(move || Timestamp(now.load(Ordering::SeqCst)))
    }

    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }

    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }

    /// Sets the time (backwards too).
    fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { base, schema, .. } = self {
            let (base, sql) = (
                base.clone(),
                format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            );
            // Drop may run inside a runtime: do the clean-up on a thread with its own.
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(admin(&base, &sql));
            })
            .join();
        }
    }
}

/// Runs one statement on the test server outside any store.
async fn admin(base: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {POSTGRES_URL_VAR}: {e}"));
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = connection.await;
}

/// Declares each behaviour test once per backend: `sqlite::NAME` and `postgres::NAME`.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = super::TestDb::postgres(stringify!($name)).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

/// Declares tests that only mean something with PostgreSQL (several replicas on one database).
macro_rules! postgres_tests {
    ($($name:ident),* $(,)?) => {
        mod replicas {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = super::TestDb::postgres(stringify!($name)).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

backend_tests![
    a_delivery_is_stored_once_per_dedup_key,
    concurrent_enqueues_share_commits_and_lose_nothing,
    claim_complete_records_one_outcome,
    an_expired_lease_lets_another_worker_take_over,
    retry_waits_until_its_time_and_park_keeps_the_error,
    release_does_not_count_an_attempt,
    deliveries_survive_reopening_the_store,
    a_closed_store_reports_unavailable,
    new_and_requeued_deliveries_wake_idle_workers,
    one_worker_at_a_time_holds_a_comment_and_its_note_is_remembered,
    commands_are_throttled_per_target,
    repeats_inside_the_window_fold_into_one_message_and_one_follow_up,
    concurrent_repeats_fold_into_one_message,
    a_failed_chat_message_is_retried_then_given_up,
    completion_records_its_diagnoses_once,
    diagnoses_are_filtered_and_paged_newest_first,
    a_resolution_resolves_the_open_diagnoses_of_its_comment,
    a_late_diagnosis_of_a_resolved_comment_is_resolved_at_once,
    diagnosis_stats_count_by_top_cause_and_project,
    parked_deliveries_are_listed_and_can_be_replayed,
    diagnoses_are_listed_until_a_time_and_by_any_of_their_causes,
    a_diagnosis_is_read_with_its_report,
    the_overview_counts_windows_days_edges_resolutions_and_parked_deliveries,
    diagnoses_recorded_before_the_dashboard_are_found_by_their_causes,
];

postgres_tests![
    two_replicas_claim_each_delivery_exactly_once,
    a_replica_takes_over_what_another_left_expired,
    replicas_starting_together_migrate_once,
    a_connection_the_server_closed_is_replaced,
];

mod preflight;

fn delivery(key: Option<&str>) -> NewDelivery {
    NewDelivery {
        event: "Pipeline Hook".into(),
        dedup_key: key.map(str::to_string),
        event_uuid: Some("uuid-1".into()),
        instance: Some("https://gitlab.example.com".into()),
        received_at: Timestamp::now(),
        body: b"{\"object_kind\":\"pipeline\"}".to_vec(),
    }
}

const LEASE: Duration = Duration::from_secs(60);

async fn a_delivery_is_stored_once_per_dedup_key(db: TestDb) {
    let s = db.open().await;
    let first = s.enqueue(delivery(Some("k1"))).await.unwrap();
    let again = s.enqueue(delivery(Some("k1"))).await.unwrap();
    assert!(matches!(first, Enqueued::New(_)));
    assert_eq!(again, Enqueued::Duplicate(first.id()));
    s.enqueue(delivery(None)).await.unwrap();
    s.enqueue(delivery(None)).await.unwrap();
    assert_eq!(s.count().await.unwrap(), 3);
}

async fn concurrent_enqueues_share_commits_and_lose_nothing(db: TestDb) {
    let s = db.open().await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.enqueue(delivery(Some(&format!("k{}", i % 200)))).await })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        if let Enqueued::New(_) = t.await.unwrap().unwrap() {
            new += 1;
        }
    }
    assert_eq!(new, 200);
    assert_eq!(s.count().await.unwrap(), 200);
}

async fn claim_complete_records_one_outcome(db: TestDb) {
    let s = db.open().await;
    let id = s.enqueue(delivery(Some("k"))).await.unwrap().id();
    let claim = s.claim("w1", LEASE).await.unwrap().unwrap();
    assert_eq!((claim.id, claim.attempts), (id, 1));
    assert_eq!(claim.body, b"{\"object_kind\":\"pipeline\"}");
    assert!(
        s.claim("w2", LEASE).await.unwrap().is_none(),
        "a leased delivery is not claimed twice"
    );
    assert!(s.complete(&claim, "{\"ok\":true}").await.unwrap());
    assert!(
        !s.complete(&claim, "{\"ok\":true}").await.unwrap(),
        "completion happens once"
    );
    let record = s.get(id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Done);
    assert_eq!(record.outcomes, vec!["{\"ok\":true}".to_string()]);
}

async fn an_expired_lease_lets_another_worker_take_over(db: TestDb) {
    let s = db.open().await;
    s.enqueue(delivery(Some("k"))).await.unwrap();
    let stale = s.claim("crashed", Duration::ZERO).await.unwrap().unwrap();
    let fresh = s.claim("w2", LEASE).await.unwrap().unwrap();
    assert_eq!((fresh.id, fresh.attempts), (stale.id, 2));
    assert!(
        !s.complete(&stale, "late").await.unwrap(),
        "the old owner lost the lease"
    );
    assert!(s.complete(&fresh, "ok").await.unwrap());
    assert_eq!(
        s.get(fresh.id).await.unwrap().unwrap().outcomes,
        vec!["ok".to_string()]
    );
}

async fn retry_waits_until_its_time_and_park_keeps_the_error(db: TestDb) {
    let s = db.open().await;
    let id = s.enqueue(delivery(Some("k"))).await.unwrap().id();
    let claim = s.claim("w", LEASE).await.unwrap().unwrap();
    let later = Timestamp(Timestamp::now().0 + 60_000);
    assert!(s.retry_at(&claim, "GitLab 502", later).await.unwrap());
    assert!(s.claim("w", LEASE).await.unwrap().is_none(), "not due yet");
    let record = s.get(id).await.unwrap().unwrap();
    assert_eq!(record.state, DeliveryState::Queued);
    assert_eq!(record.last_error.as_deref(), Some("GitLab 502"));
    assert_eq!(record.next_attempt_at, later);
    let other = s.enqueue(delivery(Some("k2"))).await.unwrap().id();
    let claim = s.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(claim.id, other);
    assert!(s.park(&claim, "cannot decode").await.unwrap());
    let parked = s.get(other).await.unwrap().unwrap();
    assert_eq!(parked.state, DeliveryState::Parked);
    assert_eq!(parked.last_error.as_deref(), Some("cannot decode"));
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.parked), (1, 0, 1));
    assert!(s.requeue(other).await.unwrap());
    assert_eq!(s.claim("w", LEASE).await.unwrap().unwrap().id, other);
}

async fn release_does_not_count_an_attempt(db: TestDb) {
    let s = db.open().await;
    s.enqueue(delivery(None)).await.unwrap();
    let claim = s.claim("w", LEASE).await.unwrap().unwrap();
    assert!(s.release(&claim).await.unwrap());
    let again = s.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(again.attempts, 1);
}

async fn deliveries_survive_reopening_the_store(db: TestDb) {
    let s = db.open().await;
    let id = s.enqueue(delivery(Some("k"))).await.unwrap().id();
    s.close().await;
    let reopened = db.open().await;
    assert_eq!(
        reopened.get(id).await.unwrap().unwrap().state,
        DeliveryState::Queued
    );
    assert_eq!(
        reopened.enqueue(delivery(Some("k"))).await.unwrap(),
        Enqueued::Duplicate(id)
    );
}

async fn a_closed_store_reports_unavailable(db: TestDb) {
    let s = db.open().await;
    s.close().await;
    assert!(matches!(
        s.enqueue(delivery(None)).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(s.ping().await.is_err());
}

fn chat(key: &str, window: Duration) -> NewChat {
    NewChat {
        group_key: key.into(),
        route: "grp/app".into(),
        headline: "token.expired in grp/app".into(),
        payload: "{}".into(),
        window,
        sliding: false,
    }
}

async fn one_worker_at_a_time_holds_a_comment_and_its_note_is_remembered(db: TestDb) {
    let s = db.open().await;
    let first = s
        .lock_comment("mr:1:7", ProjectId(1), Some("feature"), "w1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.note_id, first.status.as_str()), (None, "none"));
    assert!(s
        .lock_comment("mr:1:7", ProjectId(1), Some("feature"), "w2", LEASE)
        .await
        .unwrap()
        .is_none());
    let update = CommentUpdate {
        note_id: NoteId(5001),
        discussion_id: None,
        pipeline_id: PipelineId(31),
        causes: "[\"token.expired\"]".into(),
        status: "open".into(),
        body: "diagnosis".into(),
    };
    assert!(!s
        .unlock_comment("mr:1:7", "w2", Some(update.clone()))
        .await
        .unwrap());
    assert!(s
        .unlock_comment("mr:1:7", "w1", Some(update))
        .await
        .unwrap());
    let again = s
        .lock_comment("mr:1:7", ProjectId(1), Some("feature"), "w2", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.note_id, again.pipeline_id),
        (Some(NoteId(5001)), PipelineId(31))
    );
    assert_eq!(again.body.as_deref(), Some("diagnosis"));
    assert_eq!(
        s.comment_for_ref(ProjectId(1), "feature")
            .await
            .unwrap()
            .unwrap()
            .target,
        "mr:1:7"
    );
    assert!(s
        .comment_for_ref(ProjectId(1), "main")
        .await
        .unwrap()
        .is_none());
    assert!(!again.taken_over);
    // An expired lock can be taken over, and says so.
    assert!(s
        .lock_comment("mr:1:8", ProjectId(1), None, "w1", Duration::ZERO)
        .await
        .unwrap()
        .is_some());
    let taken = s
        .lock_comment("mr:1:8", ProjectId(1), None, "w2", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(taken.taken_over);
}

async fn commands_are_throttled_per_target(db: TestDb) {
    let s = db.open().await;
    let throttle = Duration::from_secs(30);
    assert!(s.command_allowed("mr:1:7", throttle).await.unwrap());
    assert!(!s.command_allowed("mr:1:7", throttle).await.unwrap());
    assert!(s.command_allowed("mr:1:8", throttle).await.unwrap());
    assert!(s.command_allowed("mr:1:7", Duration::ZERO).await.unwrap());
}

async fn repeats_inside_the_window_fold_into_one_message_and_one_follow_up(db: TestDb) {
    let clock = TestClock::new();
    let s = db.open_with(&clock).await;
    let window = Duration::from_millis(300);
    let first = s
        .enqueue_chat(chat("token.expired|grp/down", window))
        .await
        .unwrap();
    for _ in 0..19 {
        assert_eq!(
            s.enqueue_chat(chat("token.expired|grp/down", window))
                .await
                .unwrap(),
            ChatQueued::Folded(match first {
                ChatQueued::New(id) => id,
                other => panic!("{other:?}"),
            })
        );
    }
    let other = s
        .enqueue_chat(chat("network.dns|grp/down", window))
        .await
        .unwrap();
    assert!(matches!(other, ChatQueued::New(_)));
    let job = s.claim_chat("sender", LEASE).await.unwrap().unwrap();
    assert!(job.first);
    assert_eq!(job.repeats, 19);
    // Announced with the message itself: no follow-up needed for those 19.
    assert!(s
        .settle_chat(&job, ChatResult::Sent { repeats: 19 })
        .await
        .unwrap());
    let job = s.claim_chat("sender", LEASE).await.unwrap().unwrap();
    assert_eq!(job.headline, "token.expired in grp/app");
    s.settle_chat(&job, ChatResult::Sent { repeats: 0 })
        .await
        .unwrap();
    assert!(s.claim_chat("sender", LEASE).await.unwrap().is_none());
    // One more repeat after sending: a follow-up once the window closes, not before.
    let third = s
        .enqueue_chat(chat("token.expired|grp/down", window))
        .await
        .unwrap();
    assert!(matches!(third, ChatQueued::Folded(_)));
    assert!(s.claim_chat("sender", LEASE).await.unwrap().is_none());
    clock.advance(window);
    let job = s.claim_chat("sender", LEASE).await.unwrap().unwrap();
    assert!(!job.first);
    assert_eq!((job.repeats, job.repeats_sent), (20, 19));
    s.settle_chat(
        &job,
        ChatResult::Sent {
            repeats: job.repeats,
        },
    )
    .await
    .unwrap();
    assert!(s.claim_chat("sender", LEASE).await.unwrap().is_none());
    // After the window, the same group starts a new message.
    assert!(matches!(
        s.enqueue_chat(chat("token.expired|grp/down", window))
            .await
            .unwrap(),
        ChatQueued::New(_)
    ));
}

async fn a_failed_chat_message_is_retried_then_given_up(db: TestDb) {
    let s = db.open().await;
    s.enqueue_chat(chat("k", Duration::ZERO)).await.unwrap();
    let job = s.claim_chat("sender", LEASE).await.unwrap().unwrap();
    assert_eq!(job.attempts, 1);
    // Claimed: not handed to a second sender.
    assert!(s.claim_chat("other", LEASE).await.unwrap().is_none());
    let retry = ChatResult::Failed {
        error: "HTTP 500".into(),
        retry_at: Some(Timestamp::now()),
    };
    assert!(s.settle_chat(&job, retry).await.unwrap());
    let job = s.claim_chat("sender", LEASE).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    let give_up = ChatResult::Failed {
        error: "HTTP 500".into(),
        retry_at: None,
    };
    s.settle_chat(&job, give_up).await.unwrap();
    assert!(s.claim_chat("sender", LEASE).await.unwrap().is_none());
    assert_eq!(
        s.chat_counts().await.unwrap(),
        vec![("failed".to_string(), 1)]
    );
}

async fn new_and_requeued_deliveries_wake_idle_workers(db: TestDb) {
    let s = db.open().await;
    let wait = Duration::from_secs(5);
    let notified = s.arrivals.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let id = s.enqueue(delivery(Some("k"))).await.unwrap().id();
    assert!(tokio::time::timeout(wait, notified).await.is_ok());
    let claim = s.claim("w", LEASE).await.unwrap().unwrap();
    assert!(s.park(&claim, "cannot decode").await.unwrap());
    let notified = s.arrivals.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    assert!(s.requeue(id).await.unwrap());
    assert!(tokio::time::timeout(wait, notified).await.is_ok());
}

async fn concurrent_repeats_fold_into_one_message(db: TestDb) {
    let s = db.open().await;
    let window = Duration::from_secs(60);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.enqueue_chat(chat("network.dns|grp/x", window)).await })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        if let ChatQueued::New(_) = t.await.unwrap().unwrap() {
            new += 1;
        }
    }
    assert_eq!(new, 1, "one message per group and window");
    let job = s.claim_chat("sender", LEASE).await.unwrap().unwrap();
    assert_eq!((job.first, job.repeats), (true, 39));
}

async fn two_replicas_claim_each_delivery_exactly_once(db: TestDb) {
    let replicas = [db.open().await, db.open().await];
    // Both replicas receive the same deliveries (a resend to each): stored once per key.
    let mut enqueues = tokio::task::JoinSet::new();
    for i in 0..200 {
        let s = replicas[i % 2].clone();
        enqueues.spawn(async move { s.enqueue(delivery(Some(&format!("k{}", i % 100)))).await });
    }
    let mut new = 0;
    while let Some(done) = enqueues.join_next().await {
        if let Enqueued::New(_) = done.unwrap().unwrap() {
            new += 1;
        }
    }
    assert_eq!(new, 100);
    assert_eq!(replicas[1].count().await.unwrap(), 100);
    // Four workers on each replica drain the shared queue.
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..8 {
        let s = replicas[w % 2].clone();
        workers.spawn(async move {
            let owner = format!("replica{}/{w}", w % 2);
            let mut claimed = Vec::new();
            while let Some(claim) = s.claim(&owner, LEASE).await.unwrap() {
                assert_eq!(claim.attempts, 1, "claimed once");
                assert!(s.complete(&claim, &owner).await.unwrap());
                claimed.push(claim.id);
            }
            claimed
        });
    }
    let mut all = Vec::new();
    while let Some(done) = workers.join_next().await {
        all.extend(done.unwrap());
    }
    all.sort();
    let claimed = all.len();
    all.dedup();
    assert_eq!(
        (claimed, all.len()),
        (100, 100),
        "each delivery claimed exactly once"
    );
    for id in all {
        let record = replicas[0].get(id).await.unwrap().unwrap();
        assert_eq!(record.state, DeliveryState::Done);
        assert_eq!(record.outcomes.len(), 1);
    }
    let stats = replicas[0].stats().await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.parked), (0, 0, 0));
}

async fn a_replica_takes_over_what_another_left_expired(db: TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    // A delivery whose lease expired (its replica crashed) is picked up by the other.
    let id = a.enqueue(delivery(Some("k1"))).await.unwrap().id();
    let stale = a.claim("a/0", Duration::ZERO).await.unwrap().unwrap();
    let fresh = b.claim("b/0", LEASE).await.unwrap().unwrap();
    assert_eq!((fresh.id, fresh.attempts), (id, 2));
    assert!(
        !a.complete(&stale, "late").await.unwrap(),
        "the crashed owner lost it"
    );
    assert!(!a.retry_at(&stale, "late", Timestamp::now()).await.unwrap());
    assert!(b.complete(&fresh, "ok").await.unwrap());
    assert_eq!(
        a.get(id).await.unwrap().unwrap().outcomes,
        vec!["ok".to_string()]
    );
    // A lease still running is left alone.
    a.enqueue(delivery(Some("k2"))).await.unwrap();
    let held = a.claim("a/0", LEASE).await.unwrap().unwrap();
    assert!(b.claim("b/0", LEASE).await.unwrap().is_none());
    assert!(a.complete(&held, "ok").await.unwrap());
    // The same for comment locks, and the taker is told.
    assert!(a
        .lock_comment("mr:1:7", ProjectId(1), None, "a/0", Duration::ZERO)
        .await
        .unwrap()
        .is_some());
    let taken = b
        .lock_comment("mr:1:7", ProjectId(1), None, "b/0", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(taken.taken_over);
    assert!(a
        .lock_comment("mr:1:7", ProjectId(1), None, "a/0", LEASE)
        .await
        .unwrap()
        .is_none());
    // And for a chat message claimed by a sender that went away.
    a.enqueue_chat(chat("k", Duration::ZERO)).await.unwrap();
    let lost = a
        .claim_chat("a/sender", Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let job = b.claim_chat("b/sender", LEASE).await.unwrap().unwrap();
    assert_eq!((job.id, job.attempts), (lost.id, 2));
    assert!(!a
        .settle_chat(&lost, ChatResult::Sent { repeats: 0 })
        .await
        .unwrap());
    assert!(b
        .settle_chat(&job, ChatResult::Sent { repeats: 0 })
        .await
        .unwrap());
}

async fn replicas_starting_together_migrate_once(db: TestDb) {
    let (a, b) = tokio::join!(Store::open(db.url()), Store::open(db.url()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let id = a.enqueue(delivery(Some("k"))).await.unwrap().id();
    assert_eq!(
        b.enqueue(delivery(Some("k"))).await.unwrap(),
        Enqueued::Duplicate(id)
    );
    drop((a, b));
    // Opening again finds every migration applied and changes nothing.
    let again = db.open().await;
    assert_eq!(again.count().await.unwrap(), 1);
}

async fn a_connection_the_server_closed_is_replaced(db: TestDb) {
    let s = db.open().await;
    s.enqueue(delivery(Some("k"))).await.unwrap();
    let TestDb::Postgres { base, schema, .. } = &db else {
        unreachable!("a PostgreSQL test")
    };
    // The server ends every connection of this store (a restart or failover looks the same).
    admin(
        base,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{schema}'"
        ),
    )
    .await;
    let mut failures = 0;
    for _ in 0..3 {
        match s.count().await {
            Ok(n) => {
                assert_eq!(n, 1);
                break;
            }
            Err(_) => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failures < 3, "the store connects again");
    s.ping().await.unwrap();
    assert_eq!(s.count().await.unwrap(), 1);
}

fn diagnosis(project: u64, pipeline: u64, top: &str, target: Option<&str>) -> NewDiagnosis {
    let causes: Vec<String> = if top == "undetermined" {
        Vec::new()
    } else {
        vec![top.to_string(), "project.no_access".to_string()]
    };
    NewDiagnosis {
        project_id: ProjectId(project),
        project_path: Some(format!("Grp/Project-{project}")),
        pipeline_id: PipelineId(pipeline),
        pipeline_url: Some(format!(
            "https://gitlab.example.com/grp/p/-/pipelines/{pipeline}"
        )),
        job_name: "deploy".into(),
        job_url: Some("https://gitlab.example.com/grp/p/-/jobs/9".into()),
        git_ref: "main".into(),
        top_cause: top.into(),
        causes: causes.clone(),
        findings: causes
            .iter()
            .map(|c| CauseVerdict {
                cause: c.clone(),
                verdict: "likely".into(),
            })
            .chain([CauseVerdict {
                cause: "token.expired".into(),
                verdict: "ruled_out".into(),
            }])
            .collect(),
        downstream_project: Some("grp/app".into()),
        target: target.map(str::to_string),
        note_url: target
            .map(|_| "https://gitlab.example.com/grp/p/-/merge_requests/7#note_5".into()),
        gitlab_calls: 6,
        // A comment showed the report; without a target none was posted.
        report: target.map(|t| format!("{{\"target\":\"{t}\",\"pipeline\":{pipeline}}}")),
    }
}

/// Stores, claims and completes one delivery with `history`; returns its id.
async fn complete_with(s: &Store, key: &str, history: History) -> DeliveryId {
    let id = s.enqueue(delivery(Some(key))).await.unwrap().id();
    let claim = s.claim("w", LEASE).await.unwrap().unwrap();
    assert_eq!(claim.id, id);
    assert!(s
        .complete_with_history(&claim, "{}", history)
        .await
        .unwrap());
    id
}

fn recorded(history: Vec<NewDiagnosis>) -> History {
    History {
        diagnoses: history,
        resolved: None,
    }
}

fn all() -> DiagnosisFilter {
    DiagnosisFilter {
        limit: 500,
        ..DiagnosisFilter::default()
    }
}

/// The pipeline ids of the diagnoses listed.
async fn list(s: &Store, filter: DiagnosisFilter) -> Vec<u64> {
    s.list_diagnoses(&filter)
        .await
        .unwrap()
        .diagnoses
        .iter()
        .map(|d| d.pipeline_id.0)
        .collect()
}

async fn completion_records_its_diagnoses_once(db: TestDb) {
    let s = db.open().await;
    s.enqueue(delivery(Some("k"))).await.unwrap();
    let stale = s.claim("crashed", Duration::ZERO).await.unwrap().unwrap();
    let fresh = s.claim("w2", LEASE).await.unwrap().unwrap();
    let history = recorded(vec![
        diagnosis(1, 31, "project.not_found", Some("mr:1:7")),
        diagnosis(1, 31, "undetermined", Some("mr:1:7")),
    ]);
    assert!(!s
        .complete_with_history(&stale, "late", history.clone())
        .await
        .unwrap());
    assert!(
        s.list_diagnoses(&all()).await.unwrap().diagnoses.is_empty(),
        "a lost lease records nothing"
    );
    let before = Timestamp::now();
    assert!(s
        .complete_with_history(&fresh, "ok", history.clone())
        .await
        .unwrap());
    assert!(!s
        .complete_with_history(&fresh, "ok", history)
        .await
        .unwrap());
    let page = s.list_diagnoses(&all()).await.unwrap();
    assert_eq!(page.diagnoses.len(), 2, "recorded once");
    assert_eq!(page.next_cursor, None);
    let newest = &page.diagnoses[0];
    assert_eq!(newest.top_cause, "undetermined");
    assert!(newest.causes.is_empty());
    let d = &page.diagnoses[1];
    assert!(d.id < newest.id);
    assert_eq!(d.delivery_id, fresh.id);
    assert!(d.recorded_at >= before);
    assert_eq!(
        (d.project_id, d.project_path.as_deref(), d.pipeline_id),
        (ProjectId(1), Some("Grp/Project-1"), PipelineId(31))
    );
    assert_eq!(d.top_cause, "project.not_found");
    assert_eq!(d.causes, vec!["project.not_found", "project.no_access"]);
    assert_eq!(d.findings.len(), 3);
    assert_eq!(d.findings[2].verdict, "ruled_out");
    assert_eq!(d.status, DiagnosisStatus::Open);
    assert_eq!((d.resolved_at, d.resolved_in_pipeline), (None, None));
    assert_eq!(d.target.as_deref(), Some("mr:1:7"));
    assert!(d.note_url.as_deref().unwrap().ends_with("#note_5"));
    assert_eq!(d.job_name, "deploy");
    assert_eq!(d.downstream_project.as_deref(), Some("grp/app"));
    assert_eq!(d.gitlab_calls, 6);
    // The delivery's outcome went in with them.
    assert_eq!(
        s.get(fresh.id).await.unwrap().unwrap().outcomes,
        vec!["ok".to_string()]
    );
}

async fn diagnoses_are_filtered_and_paged_newest_first(db: TestDb) {
    let clock = TestClock::new();
    let s = db.open_with(&clock).await;
    complete_with(
        &s,
        "a",
        recorded(vec![
            diagnosis(1, 31, "project.not_found", Some("mr:1:7")),
            diagnosis(2, 41, "token.expired", Some("mr:2:1")),
        ]),
    )
    .await;
    clock.advance(Duration::from_millis(5));
    let later = clock.now();
    complete_with(
        &s,
        "b",
        recorded(vec![
            diagnosis(1, 32, "undetermined", None),
            diagnosis(2, 42, "network.dns", None),
            diagnosis(3, 51, "api_url.host", None),
        ]),
    )
    .await;
    assert_eq!(list(&s, all()).await, vec![51, 42, 32, 41, 31]);
    let project = |p: ProjectFilter| DiagnosisFilter {
        project: Some(p),
        ..all()
    };
    assert_eq!(
        list(&s, project(ProjectFilter::Id(ProjectId(1)))).await,
        vec![32, 31]
    );
    assert_eq!(
        list(&s, project(ProjectFilter::Path("grp/project-2".into()))).await,
        vec![42, 41],
        "paths compare case-insensitively"
    );
    assert!(list(&s, project(ProjectFilter::Path("grp/other".into())))
        .await
        .is_empty());
    let pipeline = DiagnosisFilter {
        pipeline: Some(PipelineId(41)),
        ..all()
    };
    assert_eq!(list(&s, pipeline).await, vec![41]);
    let cause = |c: &str| DiagnosisFilter {
        cause: Some(c.into()),
        ..all()
    };
    assert_eq!(list(&s, cause("token.expired")).await, vec![41]);
    assert_eq!(list(&s, cause("undetermined")).await, vec![32]);
    assert_eq!(
        list(&s, cause("project.no_access")).await,
        vec![51, 42, 41, 31],
        "any confirmed or likely cause matches"
    );
    assert!(list(&s, cause("token.revoked")).await.is_empty());
    let since = DiagnosisFilter {
        since: Some(later),
        ..all()
    };
    assert_eq!(list(&s, since).await, vec![51, 42, 32]);
    let open = DiagnosisFilter {
        status: Some(DiagnosisStatus::Open),
        ..all()
    };
    assert_eq!(list(&s, open).await.len(), 5);
    let resolved = DiagnosisFilter {
        status: Some(DiagnosisStatus::Resolved),
        ..all()
    };
    assert!(list(&s, resolved).await.is_empty());
    // Pages of two: the cursor of each page leads to the next, the last has none.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_diagnoses(&DiagnosisFilter {
                limit: 2,
                before_id: cursor,
                ..DiagnosisFilter::default()
            })
            .await
            .unwrap();
        assert!(page.diagnoses.len() <= 2);
        seen.extend(page.diagnoses.iter().map(|d| d.pipeline_id.0));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, vec![51, 42, 32, 41, 31]);
    // Filters and the cursor combine.
    let page = s
        .list_diagnoses(&DiagnosisFilter {
            limit: 1,
            cause: Some("project.no_access".into()),
            ..DiagnosisFilter::default()
        })
        .await
        .unwrap();
    let next = s
        .list_diagnoses(&DiagnosisFilter {
            limit: 10,
            cause: Some("project.no_access".into()),
            before_id: page.next_cursor,
            ..DiagnosisFilter::default()
        })
        .await
        .unwrap();
    let pipelines: Vec<u64> = next.diagnoses.iter().map(|d| d.pipeline_id.0).collect();
    assert_eq!(pipelines, vec![42, 41, 31]);
    assert_eq!(next.next_cursor, None);
}

async fn a_resolution_resolves_the_open_diagnoses_of_its_comment(db: TestDb) {
    let s = db.open().await;
    complete_with(
        &s,
        "a",
        recorded(vec![
            diagnosis(1, 31, "project.not_found", Some("mr:1:7")),
            diagnosis(1, 33, "project.not_found", Some("mr:1:8")),
        ]),
    )
    .await;
    complete_with(
        &s,
        "b",
        recorded(vec![diagnosis(1, 32, "token.expired", Some("mr:1:7"))]),
    )
    .await;
    let resolution = History {
        diagnoses: Vec::new(),
        resolved: Some(Resolution {
            target: "mr:1:7".into(),
            pipeline_id: PipelineId(34),
        }),
    };
    let before = Timestamp::now();
    complete_with(&s, "c", resolution).await;
    let resolved = s
        .list_diagnoses(&DiagnosisFilter {
            status: Some(DiagnosisStatus::Resolved),
            ..all()
        })
        .await
        .unwrap()
        .diagnoses;
    let pipelines: Vec<u64> = resolved.iter().map(|d| d.pipeline_id.0).collect();
    assert_eq!(pipelines, vec![32, 31]);
    for d in &resolved {
        assert_eq!(d.resolved_in_pipeline, Some(PipelineId(34)));
        assert!(d.resolved_at.unwrap() >= before);
    }
    let open = DiagnosisFilter {
        status: Some(DiagnosisStatus::Open),
        ..all()
    };
    assert_eq!(list(&s, open.clone()).await, vec![33], "another comment");
    // A new failure on the same merge request is open again; the resolved ones stay resolved.
    complete_with(
        &s,
        "d",
        recorded(vec![diagnosis(1, 35, "token.expired", Some("mr:1:7"))]),
    )
    .await;
    assert_eq!(list(&s, open).await, vec![35, 33]);
}

async fn a_late_diagnosis_of_a_resolved_comment_is_resolved_at_once(db: TestDb) {
    let s = db.open().await;
    // Pipeline 50 passed and resolved the comment of mr:1:9 ...
    s.lock_comment("mr:1:9", ProjectId(1), Some("main"), "w", LEASE)
        .await
        .unwrap()
        .unwrap();
    let update = CommentUpdate {
        note_id: NoteId(5001),
        discussion_id: None,
        pipeline_id: PipelineId(50),
        causes: "[\"token.expired\"]".into(),
        status: "resolved".into(),
        body: "resolved".into(),
    };
    assert!(s.unlock_comment("mr:1:9", "w", Some(update)).await.unwrap());
    // ... when the failure of pipeline 45 is processed late: that comment was left alone.
    complete_with(
        &s,
        "late",
        recorded(vec![
            diagnosis(1, 45, "token.expired", Some("mr:1:9")),
            diagnosis(1, 55, "token.expired", Some("mr:1:9")),
            diagnosis(1, 46, "token.expired", Some("mr:1:10")),
        ]),
    )
    .await;
    let all = s.list_diagnoses(&all()).await.unwrap().diagnoses;
    let status: Vec<(u64, DiagnosisStatus, Option<u64>)> = all
        .iter()
        .map(|d| {
            (
                d.pipeline_id.0,
                d.status,
                d.resolved_in_pipeline.map(|p| p.0),
            )
        })
        .collect();
    assert_eq!(
        status,
        vec![
            (46, DiagnosisStatus::Open, None),
            (55, DiagnosisStatus::Open, None),
            (45, DiagnosisStatus::Resolved, Some(50)),
        ]
    );
}

async fn diagnosis_stats_count_by_top_cause_and_project(db: TestDb) {
    let clock = TestClock::new();
    let s = db.open_with(&clock).await;
    assert_eq!(
        s.diagnosis_stats(None).await.unwrap(),
        DiagnosisStats::default()
    );
    let mut unnamed = diagnosis(9, 91, "network.dns", None);
    unnamed.project_path = None;
    complete_with(
        &s,
        "a",
        recorded(vec![
            diagnosis(1, 31, "project.not_found", None),
            diagnosis(1, 32, "project.not_found", None),
            unnamed,
        ]),
    )
    .await;
    clock.advance(Duration::from_millis(5));
    let later = clock.now();
    complete_with(
        &s,
        "b",
        recorded(vec![
            diagnosis(2, 41, "token.expired", None),
            diagnosis(1, 33, "undetermined", None),
        ]),
    )
    .await;
    let stats = s.diagnosis_stats(None).await.unwrap();
    assert_eq!(stats.total, 5);
    let counts = |m: &BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Vec<(String, u64)>>()
    };
    let pairs = |p: &[(&str, u64)]| {
        p.iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<Vec<(String, u64)>>()
    };
    assert_eq!(
        counts(&stats.by_cause),
        pairs(&[
            ("network.dns", 1),
            ("project.not_found", 2),
            ("token.expired", 1),
            ("undetermined", 1),
        ])
    );
    assert_eq!(
        counts(&stats.by_project),
        pairs(&[("9", 1), ("Grp/Project-1", 3), ("Grp/Project-2", 1)])
    );
    let recent = s.diagnosis_stats(Some(later)).await.unwrap();
    assert_eq!(recent.total, 2);
    assert_eq!(
        counts(&recent.by_cause),
        pairs(&[("token.expired", 1), ("undetermined", 1)])
    );
    assert_eq!(
        counts(&recent.by_project),
        pairs(&[("Grp/Project-1", 1), ("Grp/Project-2", 1)])
    );
    let future = Timestamp(Timestamp::now().0 + 60_000);
    assert_eq!(s.diagnosis_stats(Some(future)).await.unwrap().total, 0);
}

async fn parked_deliveries_are_listed_and_can_be_replayed(db: TestDb) {
    let s = db.open().await;
    assert!(s.list_parked(10).await.unwrap().is_empty());
    let mut parked = Vec::new();
    for key in ["p1", "p2", "p3"] {
        let id = s.enqueue(delivery(Some(key))).await.unwrap().id();
        let claim = s.claim("w", LEASE).await.unwrap().unwrap();
        assert!(s
            .park(&claim, &format!("cannot decode {key}"))
            .await
            .unwrap());
        parked.push(id);
    }
    let done = complete_with(&s, "done", History::default()).await;
    s.enqueue(delivery(Some("queued"))).await.unwrap();
    let listed = s.list_parked(10).await.unwrap();
    let ids: Vec<DeliveryId> = listed.iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![parked[2], parked[1], parked[0]], "newest first");
    let first = &listed[0];
    assert_eq!(first.event, "Pipeline Hook");
    assert_eq!(first.attempts, 1);
    assert_eq!(first.last_error.as_deref(), Some("cannot decode p3"));
    assert!(first.parked_at.unwrap() >= first.received_at);
    assert_eq!(s.list_parked(2).await.unwrap().len(), 2);
    // Replay puts it back in the queue; it is no longer listed.
    assert!(s.requeue(parked[1]).await.unwrap());
    assert!(!s.requeue(parked[1]).await.unwrap(), "queued: not again");
    let ids: Vec<DeliveryId> = s
        .list_parked(10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![parked[2], parked[0]]);
    assert_eq!(
        s.get(parked[1]).await.unwrap().unwrap().state,
        DeliveryState::Queued
    );
    assert!(
        s.requeue(done).await.unwrap(),
        "a done delivery may be replayed"
    );
    assert!(!s.requeue(DeliveryId(999_999)).await.unwrap());
}

async fn diagnoses_are_listed_until_a_time_and_by_any_of_their_causes(db: TestDb) {
    let clock = TestClock::new();
    let s = db.open_with(&clock).await;
    let first = clock.now();
    complete_with(
        &s,
        "a",
        recorded(vec![diagnosis(1, 31, "project.not_found", Some("mr:1:7"))]),
    )
    .await;
    clock.advance(Duration::from_millis(5));
    let second = clock.now();
    let mut token = diagnosis(2, 41, "token.expired", Some("mr:2:1"));
    token.causes = vec!["token.expired".into(), "api_url.host".into()];
    complete_with(&s, "b", recorded(vec![token])).await;
    clock.advance(Duration::from_millis(5));
    let third = clock.now();
    // The top cause repeated in the list, a cause named twice: each is found once.
    let mut dns = diagnosis(1, 51, "network.dns", None);
    dns.causes = vec![
        "network.dns".into(),
        "api_url.host".into(),
        "network.dns".into(),
        "api_url.host".into(),
    ];
    complete_with(&s, "c", recorded(vec![dns])).await;
    let until = |t: Timestamp| DiagnosisFilter {
        until: Some(t),
        ..all()
    };
    assert!(list(&s, until(first)).await.is_empty(), "before, not at");
    assert_eq!(list(&s, until(second)).await, vec![31]);
    assert_eq!(list(&s, until(third)).await, vec![41, 31]);
    assert_eq!(
        list(&s, until(Timestamp(third.0 + 1))).await,
        vec![51, 41, 31]
    );
    assert_eq!(
        list(
            &s,
            DiagnosisFilter {
                since: Some(second),
                until: Some(third),
                ..all()
            }
        )
        .await,
        vec![41]
    );
    let cause = |c: &str| DiagnosisFilter {
        cause: Some(c.into()),
        ..all()
    };
    // A cause that is never the top one finds the diagnoses listing it, once each.
    assert_eq!(list(&s, cause("api_url.host")).await, vec![51, 41]);
    assert_eq!(list(&s, cause("network.dns")).await, vec![51]);
    assert_eq!(list(&s, cause("project.no_access")).await, vec![31]);
    assert_eq!(
        list(
            &s,
            DiagnosisFilter {
                until: Some(third),
                ..cause("api_url.host")
            }
        )
        .await,
        vec![41]
    );
    assert_eq!(
        list(
            &s,
            DiagnosisFilter {
                project: Some(ProjectFilter::Path("GRP/PROJECT-1".into())),
                ..cause("api_url.host")
            }
        )
        .await,
        vec![51]
    );
    assert_eq!(
        list(
            &s,
            DiagnosisFilter {
                status: Some(DiagnosisStatus::Resolved),
                ..cause("api_url.host")
            }
        )
        .await,
        Vec::<u64>::new()
    );
    // Pages of one through a cause: the cursor leads on to the older diagnosis.
    let page = s
        .list_diagnoses(&DiagnosisFilter {
            limit: 1,
            ..cause("api_url.host")
        })
        .await
        .unwrap();
    assert_eq!(page.diagnoses[0].pipeline_id, PipelineId(51));
    let next = s
        .list_diagnoses(&DiagnosisFilter {
            limit: 1,
            before_id: page.next_cursor,
            ..cause("api_url.host")
        })
        .await
        .unwrap();
    assert_eq!(next.diagnoses[0].pipeline_id, PipelineId(41));
    assert_eq!(next.next_cursor, None);
    // The record read through a cause is the same as read without one.
    let by_cause = s
        .list_diagnoses(&cause("api_url.host"))
        .await
        .unwrap()
        .diagnoses;
    let plain = s.list_diagnoses(&all()).await.unwrap().diagnoses;
    assert_eq!(by_cause[..], plain[..2]);
    assert_eq!(
        by_cause[0].causes,
        vec!["network.dns", "api_url.host", "network.dns", "api_url.host"],
        "the list as recorded"
    );
}

async fn a_diagnosis_is_read_with_its_report(db: TestDb) {
    let s = db.open().await;
    complete_with(
        &s,
        "a",
        recorded(vec![
            diagnosis(1, 31, "token.expired", Some("mr:1:7")),
            diagnosis(1, 32, "network.dns", None),
        ]),
    )
    .await;
    let listed = s.list_diagnoses(&all()).await.unwrap().diagnoses;
    let (without, with) = (&listed[0], &listed[1]);
    let detail = s.diagnosis(with.id).await.unwrap().unwrap();
    assert_eq!(&detail.record, with);
    assert_eq!(
        detail.report.as_deref(),
        Some(r#"{"target":"mr:1:7","pipeline":31}"#)
    );
    let detail = s.diagnosis(without.id).await.unwrap().unwrap();
    assert_eq!(&detail.record, without);
    assert_eq!(detail.report, None);
    assert_eq!(s.diagnosis(without.id + 100).await.unwrap(), None);
}

/// Milliseconds in an hour and a day.
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

async fn the_overview_counts_windows_days_edges_resolutions_and_parked_deliveries(db: TestDb) {
    let clock = TestClock::new();
    let s = db.open_with(&clock).await;
    assert_eq!(
        s.overview().await.unwrap(),
        Overview {
            windows: OVERVIEW_WINDOWS
                .iter()
                .map(|&hours| WindowCounts {
                    hours,
                    diagnosed: 0,
                    resolved: 0
                })
                .collect(),
            ..Overview::default()
        }
    );
    // Now is noon (UTC) of a day two months ahead, so every delivery made now is due
    // whenever the clock is set in the last 40 days.
    let today = Timestamp::now().0.div_euclid(DAY_MS) + 60;
    let now = today * DAY_MS + 12 * HOUR_MS;
    let at = |t: i64| clock.set(Timestamp(t));
    let resolve = |target: &str, pipeline: u64| History {
        diagnoses: Vec::new(),
        resolved: Some(Resolution {
            target: target.into(),
            pipeline_id: PipelineId(pipeline),
        }),
    };
    // 40 days ago: outside every window, and resolved two days ago.
    at(now - 40 * DAY_MS);
    complete_with(
        &s,
        "d1",
        recorded(vec![diagnosis(1, 10, "token.expired", Some("mr:1:1"))]),
    )
    .await;
    // The last moment before the chart's first day, and its first moment.
    at((today - 29) * DAY_MS - 1);
    complete_with(
        &s,
        "d2",
        recorded(vec![diagnosis(3, 30, "network.dns", None)]),
    )
    .await;
    at((today - 29) * DAY_MS);
    complete_with(
        &s,
        "d3",
        recorded(vec![diagnosis(3, 31, "network.dns", None)]),
    )
    .await;
    at(now - 10 * DAY_MS);
    complete_with(
        &s,
        "d4",
        recorded(vec![
            diagnosis(1, 11, "token.expired", Some("mr:1:1")),
            diagnosis(2, 20, "network.dns", None),
        ]),
    )
    .await;
    at(now - 3 * DAY_MS);
    complete_with(
        &s,
        "d6",
        recorded(vec![diagnosis(1, 12, "project.not_found", Some("mr:1:2"))]),
    )
    .await;
    at(now - 2 * DAY_MS);
    complete_with(&s, "r1", resolve("mr:1:1", 13)).await;
    // Exactly 24 hours ago: inside the first window.
    at(now - 24 * HOUR_MS);
    complete_with(
        &s,
        "d7",
        recorded(vec![diagnosis(3, 32, "token.expired", None)]),
    )
    .await;
    at(now - 20 * HOUR_MS);
    let mut renamed = diagnosis(1, 14, "token.expired", Some("mr:1:3"));
    renamed.project_path = Some("grp/project-1".into());
    let mut other_edge = diagnosis(1, 14, "network.dns", Some("mr:1:3"));
    other_edge.downstream_project = Some("grp/other".into());
    complete_with(&s, "d8", recorded(vec![renamed, other_edge])).await;
    at(now - HOUR_MS);
    complete_with(&s, "r2", resolve("mr:1:3", 16)).await;
    at(now - 30 * 60_000);
    complete_with(&s, "r3", resolve("mr:1:2", 17)).await;
    at(now - 10 * 60_000);
    complete_with(
        &s,
        "d10",
        recorded(vec![diagnosis(2, 21, "network.dns", None)]),
    )
    .await;
    // After now: not counted yet.
    at(now + HOUR_MS);
    complete_with(
        &s,
        "d11",
        recorded(vec![diagnosis(2, 22, "token.expired", None)]),
    )
    .await;
    at(now);
    for key in ["p1", "p2"] {
        s.enqueue(delivery(Some(key))).await.unwrap();
        let claim = s.claim("w", LEASE).await.unwrap().unwrap();
        assert!(s.park(&claim, "cannot decode").await.unwrap());
    }

    let overview = s.overview().await.unwrap();
    assert_eq!(
        overview.windows,
        vec![
            WindowCounts {
                hours: 24,
                diagnosed: 4,
                resolved: 3
            },
            WindowCounts {
                hours: 24 * 7,
                diagnosed: 5,
                resolved: 5
            },
            WindowCounts {
                hours: 24 * 30,
                diagnosed: 9,
                resolved: 5
            },
        ]
    );
    let day = |day: i64, cause: &str, count: u64| DayCount {
        day,
        cause: cause.into(),
        count,
    };
    assert_eq!(
        overview.days,
        vec![
            day(today - 29, "network.dns", 1),
            day(today - 10, "network.dns", 1),
            day(today - 10, "token.expired", 1),
            day(today - 3, "project.not_found", 1),
            day(today - 1, "network.dns", 1),
            day(today - 1, "token.expired", 2),
            day(today, "network.dns", 1),
        ]
    );
    let edge = |project: u64, path: &str, downstream: &str, failures, open, last_at| EdgeCount {
        project_id: ProjectId(project),
        project_path: Some(path.into()),
        downstream: Some(downstream.into()),
        failures,
        open,
        last_at: Timestamp(last_at),
    };
    assert_eq!(
        overview.top_edges,
        vec![
            // Three failures each: the latest first. The path is the greatest seen.
            edge(1, "grp/project-1", "grp/app", 3, 0, now - 20 * HOUR_MS),
            edge(3, "Grp/Project-3", "grp/app", 3, 3, now - 24 * HOUR_MS),
            edge(2, "Grp/Project-2", "grp/app", 2, 2, now - 10 * 60_000),
            edge(1, "Grp/Project-1", "grp/other", 1, 0, now - 20 * HOUR_MS),
        ]
    );
    let times = |cause: &str, millis: Vec<i64>| ResolutionTimes {
        cause: cause.into(),
        millis,
    };
    assert_eq!(
        overview.resolution,
        vec![
            times("network.dns", vec![19 * HOUR_MS]),
            times("project.not_found", vec![3 * DAY_MS - 30 * 60_000]),
            // mr:1:1 failed 40 and 10 days ago: from the first failure, once.
            times("token.expired", vec![19 * HOUR_MS, 38 * DAY_MS]),
        ]
    );
    assert_eq!(overview.parked, 2);
    // A day later the first window has moved on; the chart starts a day later.
    clock.advance(Duration::from_millis(DAY_MS as u64));
    let later = s.overview().await.unwrap();
    assert_eq!(
        (later.windows[0].diagnosed, later.windows[0].resolved),
        (1, 0),
        "only what was recorded after the first overview"
    );
    assert_eq!(later.days[0], day(today - 10, "network.dns", 1));
    assert_eq!(
        later.days[later.days.len() - 2..],
        [day(today, "network.dns", 1), day(today, "token.expired", 1)]
    );
}

/// Makes the schema as it stood before the dashboard (the first four migrations) and runs
/// `sql` in it, outside any store.
async fn before_the_dashboard(db: &TestDb, sql: &str) {
    match db {
        TestDb::Sqlite { url, .. } => {
            let path = url.strip_prefix("sqlite://").unwrap();
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(include_str!("migrations/sqlite/schema_migrations.sql"))
                .unwrap();
            for (version, migration) in &crate::store::sqlite::MIGRATIONS[..4] {
                conn.execute_batch(migration).unwrap();
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
                    [version],
                )
                .unwrap();
            }
            conn.execute_batch(sql).unwrap();
        }
        TestDb::Postgres { url, .. } => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let connection = tokio::spawn(connection);
            client
                .batch_execute(include_str!("migrations/postgres/schema_migrations.sql"))
                .await
                .unwrap();
            for (version, migration) in &crate::store::postgres::MIGRATIONS[..4] {
                client.batch_execute(migration).await.unwrap();
                client
                    .execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)",
                        &[version],
                    )
                    .await
                    .unwrap();
            }
            client.batch_execute(sql).await.unwrap();
            drop(client);
            let _ = connection.await;
        }
    }
}

async fn diagnoses_recorded_before_the_dashboard_are_found_by_their_causes(db: TestDb) {
    let clock = TestClock::new();
    let now = clock.now().0;
    let ago = |minutes: i64| now - minutes * 60_000;
    // Causes as 0003 kept them: a JSON list (with a cause twice), an empty one, text that is
    // no JSON, JSON that is no list.
    let rows = [
        (
            1,
            ago(120),
            1,
            "token.expired",
            r#"["token.expired","api_url.host","api_url.host"]"#,
            Some(ago(60)),
            "'mr:1:1'",
        ),
        (2, ago(180), 1, "undetermined", "[]", Some(ago(30)), "NULL"),
        (
            3,
            ago(240),
            1,
            "undetermined",
            "not json",
            Some(ago(30)),
            "NULL",
        ),
        (
            4,
            ago(300),
            2,
            "network.dns",
            r#"{"not":"a list"}"#,
            None,
            "NULL",
        ),
    ]
    .map(
        |(pipeline, recorded, project, top, causes, resolved, target)| {
            let (status, resolved_at, resolved_by) = match resolved {
                Some(at) => ("resolved", at.to_string(), "5"),
                None => ("open", "NULL".to_string(), "NULL"),
            };
            format!(
            "(1, {recorded}, {project}, 'grp/p-{project}', {pipeline}, 'deploy', 'main', '{top}',
              '{causes}', '{status}', {resolved_at}, {resolved_by}, {target})"
        )
        },
    );
    before_the_dashboard(
        &db,
        &format!(
            "INSERT INTO deliveries (event, received_at, state, next_attempt_at)
             VALUES ('Pipeline Hook', 0, 'done', 0);
             INSERT INTO diagnoses (delivery_id, recorded_at, project_id, project_path,
                                    pipeline_id, job_name, git_ref, top_cause, causes, status,
                                    resolved_at, resolved_pipeline_id, target)
             VALUES {};",
            rows.join(", ")
        ),
    )
    .await;
    let s = db.open_with(&clock).await;
    let cause = |c: &str| DiagnosisFilter {
        cause: Some(c.into()),
        ..all()
    };
    assert_eq!(list(&s, cause("api_url.host")).await, vec![1]);
    assert_eq!(list(&s, cause("token.expired")).await, vec![1]);
    assert_eq!(list(&s, cause("undetermined")).await, vec![3, 2]);
    assert_eq!(list(&s, cause("network.dns")).await, vec![4]);
    assert!(list(&s, cause("a list")).await.is_empty());
    let first = s.list_diagnoses(&cause("api_url.host")).await.unwrap();
    let detail = s.diagnosis(first.diagnoses[0].id).await.unwrap().unwrap();
    assert_eq!(detail.report, None, "recorded before reports were kept");
    // Resolutions without a comment target stand alone, though they share cause and pipeline.
    assert_eq!(
        s.overview().await.unwrap().resolution,
        vec![
            ResolutionTimes {
                cause: "token.expired".into(),
                millis: vec![60 * 60_000],
            },
            ResolutionTimes {
                cause: "undetermined".into(),
                millis: vec![150 * 60_000, 210 * 60_000],
            },
        ]
    );
    // New diagnoses go on from there.
    let mut new = diagnosis(1, 6, "network.dns", Some("mr:1:1"));
    new.causes = vec!["network.dns".into(), "api_url.host".into()];
    complete_with(&s, "new", recorded(vec![new])).await;
    assert_eq!(list(&s, cause("api_url.host")).await, vec![6, 1]);
    assert_eq!(list(&s, cause("network.dns")).await, vec![6, 4]);
}

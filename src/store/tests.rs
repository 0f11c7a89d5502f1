//! Behaviour tests shared by every backend, so SQLite and PostgreSQL stay alike: each test
//! runs against SQLite always, and against PostgreSQL when `TRIGGER_DOCTOR_TEST_POSTGRES_URL`
//! names a server (each test then gets a schema of its own, dropped afterwards). Without the
//! variable the PostgreSQL variants say they were skipped and pass.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;

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
];

postgres_tests![
    two_replicas_claim_each_delivery_exactly_once,
    a_replica_takes_over_what_another_left_expired,
    replicas_starting_together_migrate_once,
    a_connection_the_server_closed_is_replaced,
];

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
        .lock_comment("mr:1:7", 1, Some("feature"), "w1", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.note_id, first.status.as_str()), (None, "none"));
    assert!(s
        .lock_comment("mr:1:7", 1, Some("feature"), "w2", LEASE)
        .await
        .unwrap()
        .is_none());
    let update = CommentUpdate {
        note_id: 5001,
        discussion_id: None,
        pipeline_id: 31,
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
        .lock_comment("mr:1:7", 1, Some("feature"), "w2", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.note_id, again.pipeline_id), (Some(5001), 31));
    assert_eq!(again.body.as_deref(), Some("diagnosis"));
    assert_eq!(
        s.comment_for_ref(1, "feature")
            .await
            .unwrap()
            .unwrap()
            .target,
        "mr:1:7"
    );
    assert!(s.comment_for_ref(1, "main").await.unwrap().is_none());
    assert!(!again.taken_over);
    // An expired lock can be taken over, and says so.
    assert!(s
        .lock_comment("mr:1:8", 1, None, "w1", Duration::ZERO)
        .await
        .unwrap()
        .is_some());
    let taken = s
        .lock_comment("mr:1:8", 1, None, "w2", LEASE)
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
    let s = db.open().await;
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
    tokio::time::sleep(window).await;
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
        .lock_comment("mr:1:7", 1, None, "a/0", Duration::ZERO)
        .await
        .unwrap()
        .is_some());
    let taken = b
        .lock_comment("mr:1:7", 1, None, "b/0", LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(taken.taken_over);
    assert!(a
        .lock_comment("mr:1:7", 1, None, "a/0", LEASE)
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

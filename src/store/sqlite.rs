//! SQLite backend: one file, WAL journal, `synchronous = FULL` (a commit survives power loss).
//! Writes go through one connection; webhook deliveries are batched into group commits by a
//! background task, so many concurrent acknowledgements share one fsync.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use super::{
    Claimed, DeliveryId, DeliveryRecord, DeliveryState, Enqueued, NewDelivery, QueueStats,
    StoreError,
};
use crate::timestamp::Timestamp;

/// Schema versions, applied in order once each.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    r#"
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key       TEXT UNIQUE,
    event           TEXT    NOT NULL,
    event_uuid      TEXT,
    instance        TEXT,
    received_at     INTEGER NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    last_error      TEXT,
    finished_at     INTEGER
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('queued', 'running');
CREATE INDEX deliveries_open ON deliveries (state, received_at) WHERE state <> 'done';
CREATE TABLE delivery_bodies (
    delivery_id INTEGER PRIMARY KEY REFERENCES deliveries (id),
    body        BLOB NOT NULL
);
CREATE TABLE delivery_outcomes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    recorded_at INTEGER NOT NULL,
    outcome     TEXT    NOT NULL
);
CREATE INDEX delivery_outcomes_delivery ON delivery_outcomes (delivery_id);
"#,
)];

/// Most deliveries written in one transaction.
const MAX_BATCH: usize = 512;

struct Job {
    delivery: NewDelivery,
    reply: oneshot::Sender<Result<Enqueued, StoreError>>,
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Option<SqliteConnection>>>,
    readers: SqlitePool,
    jobs: mpsc::Sender<Job>,
}

impl SqliteStore {
    pub async fn open(url: &str, arrivals: Arc<Notify>) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let mut writer = SqliteConnection::connect_with(&options).await?;
        migrate(&mut writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(options.read_only(true))
            .await?;
        let writer = Arc::new(Mutex::new(Some(writer)));
        let (jobs, rx) = mpsc::channel(8192);
        tokio::spawn(batch_writer(rx, writer.clone(), arrivals));
        Ok(SqliteStore {
            writer,
            readers,
            jobs,
        })
    }

    pub async fn enqueue(&self, delivery: NewDelivery) -> Result<Enqueued, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { delivery, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store writer stopped".into()))?
    }

    pub async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        now: Timestamp,
    ) -> Result<Option<Claimed>, StoreError> {
        let mut guard = self.writer.lock().await;
        let conn = writable(&mut guard)?;
        let lease_until = now.0 + lease.as_millis() as i64;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(
            "UPDATE deliveries
                SET state = 'running', lease_owner = ?1, next_attempt_at = ?2, attempts = attempts + 1
              WHERE id = (SELECT id FROM deliveries
                           WHERE state IN ('queued', 'running') AND next_attempt_at <= ?3
                           ORDER BY next_attempt_at LIMIT 1)
          RETURNING id, event, event_uuid, instance, received_at, attempts",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        let body: Vec<u8> =
            sqlx::query_scalar("SELECT body FROM delivery_bodies WHERE delivery_id = ?1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(Some(Claimed {
            id: DeliveryId(id),
            event: row.try_get("event")?,
            event_uuid: row.try_get("event_uuid")?,
            instance: row.try_get("instance")?,
            received_at: Timestamp(row.try_get("received_at")?),
            attempts: row.try_get::<i64, _>("attempts")? as u32,
            body,
            owner: owner.to_string(),
        }))
    }

    pub async fn complete(
        &self,
        claim: &Claimed,
        outcome: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut guard = self.writer.lock().await;
        let conn = writable(&mut guard)?;
        let mut tx = conn.begin().await?;
        let updated = sqlx::query(
            "UPDATE deliveries SET state = 'done', finished_at = ?1, lease_owner = NULL, last_error = NULL
              WHERE id = ?2 AND state = 'running' AND lease_owner = ?3",
        )
        .bind(now.0)
        .bind(claim.id.0)
        .bind(&claim.owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 {
            sqlx::query(
                "INSERT INTO delivery_outcomes (delivery_id, recorded_at, outcome) VALUES (?1, ?2, ?3)",
            )
            .bind(claim.id.0)
            .bind(now.0)
            .bind(outcome)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(updated == 1)
    }

    pub async fn retry_at(
        &self,
        claim: &Claimed,
        error: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_claimed(
            claim,
            "UPDATE deliveries SET state = 'queued', next_attempt_at = ?1, last_error = ?2, lease_owner = NULL
              WHERE id = ?3 AND state = 'running' AND lease_owner = ?4",
            at.0,
            Some(error),
        )
        .await
    }

    pub async fn park(
        &self,
        claim: &Claimed,
        error: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_claimed(
            claim,
            "UPDATE deliveries SET state = 'parked', finished_at = ?1, last_error = ?2, lease_owner = NULL
              WHERE id = ?3 AND state = 'running' AND lease_owner = ?4",
            now.0,
            Some(error),
        )
        .await
    }

    pub async fn release(&self, claim: &Claimed, now: Timestamp) -> Result<bool, StoreError> {
        self.update_claimed(
            claim,
            "UPDATE deliveries SET state = 'queued', next_attempt_at = ?1, attempts = attempts - 1,
                    lease_owner = NULL, last_error = COALESCE(?2, last_error)
              WHERE id = ?3 AND state = 'running' AND lease_owner = ?4",
            now.0,
            None,
        )
        .await
    }

    async fn update_claimed(
        &self,
        claim: &Claimed,
        sql: &str,
        time: i64,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut guard = self.writer.lock().await;
        let conn = writable(&mut guard)?;
        let updated = sqlx::query(sql)
            .bind(time)
            .bind(error)
            .bind(claim.id.0)
            .bind(&claim.owner)
            .execute(conn)
            .await?
            .rows_affected();
        Ok(updated == 1)
    }

    pub async fn requeue(&self, id: DeliveryId, now: Timestamp) -> Result<bool, StoreError> {
        let mut guard = self.writer.lock().await;
        let conn = writable(&mut guard)?;
        let updated = sqlx::query(
            "UPDATE deliveries SET state = 'queued', next_attempt_at = ?1, attempts = 0, finished_at = NULL
              WHERE id = ?2 AND state IN ('parked', 'done')",
        )
        .bind(now.0)
        .bind(id.0)
        .execute(conn)
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    pub async fn get(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let row = sqlx::query(&format!("{RECORD_SELECT} WHERE id = ?1"))
            .bind(id.0)
            .fetch_optional(&self.readers)
            .await?;
        match row {
            Some(row) => Ok(Some(self.record(row).await?)),
            None => Ok(None),
        }
    }

    pub async fn find_by_dedup_key(&self, key: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(&format!("{RECORD_SELECT} WHERE dedup_key = ?1"))
            .bind(key)
            .fetch_all(&self.readers)
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            records.push(self.record(row).await?);
        }
        Ok(records)
    }

    async fn record(&self, row: SqliteRow) -> Result<DeliveryRecord, StoreError> {
        let id: i64 = row.try_get("id")?;
        let outcomes: Vec<String> = sqlx::query_scalar(
            "SELECT outcome FROM delivery_outcomes WHERE delivery_id = ?1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.readers)
        .await?;
        let state: String = row.try_get("state")?;
        Ok(DeliveryRecord {
            id: DeliveryId(id),
            event: row.try_get("event")?,
            dedup_key: row.try_get("dedup_key")?,
            state: DeliveryState::parse(&state)
                .ok_or_else(|| StoreError::Unavailable(format!("unknown state {state:?}")))?,
            attempts: row.try_get::<i64, _>("attempts")? as u32,
            received_at: Timestamp(row.try_get("received_at")?),
            next_attempt_at: Timestamp(row.try_get("next_attempt_at")?),
            last_error: row.try_get("last_error")?,
            finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
            outcomes,
        })
    }

    pub async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries")
            .fetch_one(&self.readers)
            .await?;
        Ok(n as u64)
    }

    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n, MIN(received_at) AS oldest FROM deliveries
              WHERE state <> 'done' GROUP BY state",
        )
        .fetch_all(&self.readers)
        .await?;
        let mut stats = QueueStats::default();
        for row in rows {
            let state: String = row.try_get("state")?;
            let n = row.try_get::<i64, _>("n")? as u64;
            let oldest: Option<i64> = row.try_get("oldest")?;
            match state.as_str() {
                "queued" => stats.queued = n,
                "running" => stats.running = n,
                "parked" => {
                    stats.parked = n;
                    continue;
                }
                _ => continue,
            }
            if let Some(t) = oldest.map(Timestamp) {
                stats.oldest_pending = Some(stats.oldest_pending.map_or(t, |o| o.min(t)));
            }
        }
        Ok(stats)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        if self.writer.lock().await.is_none() {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    pub async fn close(&self) {
        if let Some(conn) = self.writer.lock().await.take() {
            let _ = conn.close().await;
        }
        self.readers.close().await;
    }
}

const RECORD_SELECT: &str = "SELECT id, event, dedup_key, state, attempts, received_at, \
     next_attempt_at, last_error, finished_at FROM deliveries";

fn writable(guard: &mut Option<SqliteConnection>) -> Result<&mut SqliteConnection, StoreError> {
    guard
        .as_mut()
        .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))
}

async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *conn)
        .await?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)")
            .bind(version)
            .bind(Timestamp::now().0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Collects waiting deliveries and writes them in one transaction: one fsync for the batch.
async fn batch_writer(
    mut rx: mpsc::Receiver<Job>,
    writer: Arc<Mutex<Option<SqliteConnection>>>,
    arrivals: Arc<Notify>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let result = {
            let mut guard = writer.lock().await;
            match guard.as_mut() {
                Some(conn) => write_batch(conn, &batch).await,
                None => Err(StoreError::Unavailable("the store is closed".into())),
            }
        };
        match result {
            Ok(outcomes) => {
                let any_new = outcomes.iter().any(|o| matches!(o, Enqueued::New(_)));
                for (job, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
                if any_new {
                    arrivals.notify_waiters();
                }
            }
            Err(e) => {
                let text = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Unavailable(text.clone())));
                }
            }
        }
    }
}

async fn write_batch(
    conn: &mut SqliteConnection,
    batch: &[Job],
) -> Result<Vec<Enqueued>, StoreError> {
    let mut tx = conn.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let d = &job.delivery;
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO deliveries (dedup_key, event, event_uuid, instance, received_at, state, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?5)
             ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        )
        .bind(&d.dedup_key)
        .bind(&d.event)
        .bind(&d.event_uuid)
        .bind(&d.instance)
        .bind(d.received_at.0)
        .fetch_optional(&mut *tx)
        .await?;
        match inserted {
            Some(id) => {
                sqlx::query("INSERT INTO delivery_bodies (delivery_id, body) VALUES (?1, ?2)")
                    .bind(id)
                    .bind(&d.body)
                    .execute(&mut *tx)
                    .await?;
                outcomes.push(Enqueued::New(DeliveryId(id)));
            }
            None => {
                let id: i64 = sqlx::query_scalar("SELECT id FROM deliveries WHERE dedup_key = ?1")
                    .bind(&d.dedup_key)
                    .fetch_one(&mut *tx)
                    .await?;
                outcomes.push(Enqueued::Duplicate(DeliveryId(id)));
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use super::*;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("td.db").display());
        (Store::open(&url).await.unwrap(), dir)
    }

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

    #[tokio::test]
    async fn a_delivery_is_stored_once_per_dedup_key() {
        let (s, _dir) = store().await;
        let first = s.enqueue(delivery(Some("k1"))).await.unwrap();
        let again = s.enqueue(delivery(Some("k1"))).await.unwrap();
        assert!(matches!(first, Enqueued::New(_)));
        assert_eq!(again, Enqueued::Duplicate(first.id()));
        s.enqueue(delivery(None)).await.unwrap();
        s.enqueue(delivery(None)).await.unwrap();
        assert_eq!(s.count().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn concurrent_enqueues_share_commits_and_lose_nothing() {
        let (s, _dir) = store().await;
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(
                    async move { s.enqueue(delivery(Some(&format!("k{}", i % 200)))).await },
                )
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

    #[tokio::test]
    async fn claim_complete_records_one_outcome() {
        let (s, _dir) = store().await;
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

    #[tokio::test]
    async fn an_expired_lease_lets_another_worker_take_over() {
        let (s, _dir) = store().await;
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

    #[tokio::test]
    async fn retry_waits_until_its_time_and_park_keeps_the_error() {
        let (s, _dir) = store().await;
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

    #[tokio::test]
    async fn release_does_not_count_an_attempt() {
        let (s, _dir) = store().await;
        s.enqueue(delivery(None)).await.unwrap();
        let claim = s.claim("w", LEASE).await.unwrap().unwrap();
        assert!(s.release(&claim).await.unwrap());
        let again = s.claim("w", LEASE).await.unwrap().unwrap();
        assert_eq!(again.attempts, 1);
    }

    #[tokio::test]
    async fn deliveries_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("td.db").display());
        let s = Store::open(&url).await.unwrap();
        let id = s.enqueue(delivery(Some("k"))).await.unwrap().id();
        s.close().await;
        let reopened = Store::open(&url).await.unwrap();
        assert_eq!(
            reopened.get(id).await.unwrap().unwrap().state,
            DeliveryState::Queued
        );
        assert_eq!(
            reopened.enqueue(delivery(Some("k"))).await.unwrap(),
            Enqueued::Duplicate(id)
        );
    }

    #[tokio::test]
    async fn a_closed_store_reports_unavailable() {
        let (s, _dir) = store().await;
        s.close().await;
        assert!(matches!(
            s.enqueue(delivery(None)).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(s.ping().await.is_err());
    }
}

//! PostgreSQL backend, for several replicas sharing one queue.
//!
//! Same tables and the same semantics as the SQLite backend. What SQLite gets from its single
//! writer, PostgreSQL gets from row locks: a claim takes the next due row with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claims from any replica never hand out one delivery
//! twice; completions and retries are conditional on the lease owner; a chat group's fold takes
//! an advisory lock on the group key. Every write is its own transaction, committed before the
//! call returns (PostgreSQL groups concurrent commits into one WAL flush by itself).
//!
//! Connections come from a deadpool-postgres pool of at most [`POOL_SIZE`], each with its
//! prepared statements; a closed connection is dropped and a new one made on next use. No TLS:
//! the server is expected on a trusted network or the same host.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, NoTls, Row};

use super::{
    from_json_list, taken_over, to_json_list, Backend, ChatJob, ChatQueued, ChatResult, Claimed,
    CommentRecord, CommentUpdate, DeliveryId, DeliveryRecord, DeliveryState, DiagnosisFilter,
    DiagnosisRecord, DiagnosisStats, DiagnosisStatus, Enqueued, History, NewChat, NewDelivery,
    ParkedDelivery, QueueStats, SqlId, StoreError,
};
use crate::ids::{NoteId, PipelineId, ProjectId};
use crate::timestamp::Timestamp;

/// Schema versions, applied in order once each (the SQLite schema, in PostgreSQL types).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_deliveries.sql")),
    (
        2,
        include_str!("migrations/postgres/0002_comments_chat_commands.sql"),
    ),
    (3, include_str!("migrations/postgres/0003_diagnoses.sql")),
];

/// Advisory lock key held while migrating (the bytes of `triggerd`; never to change).
const MIGRATION_LOCK: i64 = 0x7472_6967_6765_7264;
/// First key of the two-key advisory locks that serialise folding per chat group.
const CHAT_GROUP_LOCK: i32 = 0x7464_6367;

/// Connections per store.
const POOL_SIZE: usize = 10;
/// How long a call waits for a free connection before the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Does `url` name a PostgreSQL store?
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Parses a `postgres://` URL; errors never show the password.
pub fn parse_url(url: &str) -> Result<Config, StoreError> {
    let mut config = Config::from_str(url).map_err(|e| {
        StoreError::Config(format!(
            "{:?}: {}",
            crate::redact::redact_url(url),
            crate::redact::redact_url(&error_text(&e))
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("trigger-doctor");
    }
    Ok(config)
}

/// An error and its causes on one line (`tokio_postgres::Error` shows only its kind).
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(error_text(&e))
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

/// Opening one connection: its client and the task that drives it.
type Connecting<'a> = Pin<
    Box<dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>> + Send + 'a>,
>;

/// Opens connections with the URL's settings; a connection's end is logged with its cause.
struct Connector;

impl deadpool_postgres::Connect for Connector {
    fn connect(&self, config: &Config) -> Connecting<'_> {
        let config = config.clone();
        Box::pin(async move {
            let (client, connection) = config.connect(NoTls).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %error_text(&e), "PostgreSQL connection lost");
                }
            });
            Ok((client, task))
        })
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Timeout(_) => {
            StoreError::Unavailable("no database connection free in time".into())
        }
        PoolError::Closed => closed(),
        PoolError::Backend(e) => db(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

fn comment_record(r: &Row) -> CommentRecord {
    CommentRecord {
        target: r.get(0),
        project_id: ProjectId::from_sql(r.get(1)),
        git_ref: r.get(2),
        note_id: r.get::<_, Option<i64>>(3).map(NoteId::from_sql),
        discussion_id: r.get(4),
        pipeline_id: PipelineId::from_sql(r.get(5)),
        causes: r.get(6),
        status: r.get(7),
        updated_at: Timestamp(r.get(8)),
        body: r.get(9),
        taken_over: false,
    }
}

/// The columns read into a [`DeliveryRecord`], outcomes included.
macro_rules! record_query {
    ($filter:literal) => {
        concat!(
            "SELECT d.id, d.event, d.dedup_key, d.state, d.attempts, d.received_at, d.next_attempt_at,
                    d.last_error, d.finished_at,
                    COALESCE((SELECT array_agg(o.outcome ORDER BY o.id) FROM delivery_outcomes o
                               WHERE o.delivery_id = d.id), '{}')
               FROM deliveries d WHERE ",
            $filter,
            " ORDER BY d.id"
        )
    };
}

fn delivery_record(r: &Row) -> DeliveryRecord {
    let state: String = r.get(3);
    DeliveryRecord {
        id: DeliveryId(r.get(0)),
        event: r.get(1),
        dedup_key: r.get(2),
        state: DeliveryState::stored(&state),
        attempts: r.get::<_, i64>(4) as u32,
        received_at: Timestamp(r.get(5)),
        next_attempt_at: Timestamp(r.get(6)),
        last_error: r.get(7),
        finished_at: r.get::<_, Option<i64>>(8).map(Timestamp),
        outcomes: r.get(9),
    }
}

fn diagnosis_record(r: &Row) -> DiagnosisRecord {
    let causes: String = r.get(11);
    let findings: String = r.get(12);
    let status: String = r.get(14);
    DiagnosisRecord {
        id: r.get(0),
        delivery_id: DeliveryId(r.get(1)),
        recorded_at: Timestamp(r.get(2)),
        project_id: ProjectId::from_sql(r.get(3)),
        project_path: r.get(4),
        pipeline_id: PipelineId::from_sql(r.get(5)),
        pipeline_url: r.get(6),
        job_name: r.get(7),
        job_url: r.get(8),
        git_ref: r.get(9),
        top_cause: r.get(10),
        causes: from_json_list(&causes),
        findings: from_json_list(&findings),
        downstream_project: r.get(13),
        status: DiagnosisStatus::stored(&status),
        resolved_at: r.get::<_, Option<i64>>(15).map(Timestamp),
        resolved_in_pipeline: r.get::<_, Option<i64>>(16).map(PipelineId::from_sql),
        target: r.get(17),
        note_url: r.get(18),
        gitlab_calls: r.get::<_, i64>(19) as u32,
    }
}

impl PostgresStore {
    /// Connects and migrates (once, under an advisory lock, whichever replica comes first).
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let config = parse_url(url)?;
        let manager = Manager::from_connect(
            config,
            Connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(ACQUIRE_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let mut conn = pool.get().await.map_err(pool_error)?;
        migrate(&mut conn).await.map_err(db)?;
        drop(conn);
        Ok(PostgresStore { pool })
    }

    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one statement and tells whether it changed exactly one row.
    async fn update_one(
        &self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let statement = c.prepare_cached(sql).await.map_err(db)?;
        let n = c.execute(&statement, params).await.map_err(db)?;
        Ok(n == 1)
    }
}

#[async_trait::async_trait]
impl Backend for PostgresStore {
    async fn enqueue(&self, d: NewDelivery) -> Result<Enqueued, StoreError> {
        let c = self.conn().await?;
        let insert = c
            .prepare_cached(
                "WITH ins AS (
                    INSERT INTO deliveries (dedup_key, event, event_uuid, instance, received_at, state,
                                            next_attempt_at)
                    VALUES ($1, $2, $3, $4, $5, 'queued', $5)
                    ON CONFLICT (dedup_key) DO NOTHING RETURNING id
                 ), body AS (
                    INSERT INTO delivery_bodies (delivery_id, body) SELECT id, $6::bytea FROM ins
                 )
                 SELECT id FROM ins",
            )
.await
.map_err(db)?;
        let existing = c
            .prepare_cached("SELECT id FROM deliveries WHERE dedup_key = $1")
            .await
            .map_err(db)?;
        // A conflicting insert still in flight is waited for by ON CONFLICT; if it rolled back
        // in between, the key is free again and the next round inserts.
        for _ in 0..3 {
            let row = c
                .query_opt(
                    &insert,
                    &[
                        &d.dedup_key,
                        &d.event,
                        &d.event_uuid,
                        &d.instance,
                        &d.received_at.0,
                        &d.body,
                    ],
                )
                .await
                .map_err(db)?;
            if let Some(row) = row {
                return Ok(Enqueued::New(DeliveryId(row.get(0))));
            }
            if let Some(row) = c.query_opt(&existing, &[&d.dedup_key]).await.map_err(db)? {
                return Ok(Enqueued::Duplicate(DeliveryId(row.get(0))));
            }
        }
        Err(StoreError::Unavailable(
            "the delivery's dedup key kept conflicting".into(),
        ))
    }

    async fn claim(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Claimed>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(
                "UPDATE deliveries d
                    SET state = 'running', lease_owner = $1, next_attempt_at = $2,
                        attempts = d.attempts + 1
                   FROM delivery_bodies b
                  WHERE d.id = (SELECT id FROM deliveries
                                 WHERE state IN ('queued', 'running') AND next_attempt_at <= $3
                                 ORDER BY next_attempt_at, id LIMIT 1
                                 FOR UPDATE SKIP LOCKED)
                    AND b.delivery_id = d.id
              RETURNING d.id, d.event, d.event_uuid, d.instance, d.received_at, d.attempts, b.body",
            )
            .await
            .map_err(db)?;
        let until = until.0;
        let row = c
            .query_opt(&statement, &[&owner, &until, &now.0])
            .await
            .map_err(db)?;
        Ok(row.map(|r| Claimed {
            id: DeliveryId(r.get(0)),
            event: r.get(1),
            event_uuid: r.get(2),
            instance: r.get(3),
            received_at: Timestamp(r.get(4)),
            attempts: r.get::<_, i64>(5) as u32,
            body: r.get(6),
            owner: owner.to_string(),
        }))
    }

    async fn complete(
        &self,
        claim: &Claimed,
        outcome: &str,
        history: History,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        // The state change and the outcome in one statement: both commit, or neither.
        let done = c
            .prepare_cached(
                "WITH done AS (
                    UPDATE deliveries SET state = 'done', finished_at = $1, lease_owner = NULL,
                                          last_error = NULL
                     WHERE id = $2 AND state = 'running' AND lease_owner = $3
                 RETURNING id
                 )
                 INSERT INTO delivery_outcomes (delivery_id, recorded_at, outcome)
                 SELECT id, $1::bigint, $4::text FROM done",
            )
            .await
            .map_err(db)?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&now.0, &claim.id.0, &claim.owner, &outcome];
        if history == History::default() {
            let n = c.execute(&done, &params).await.map_err(db)?;
            return Ok(n == 1);
        }
        let insert = c
            .prepare_cached(
                "INSERT INTO diagnoses (delivery_id, recorded_at, project_id, project_path,
                                        pipeline_id, pipeline_url, job_name, job_url, git_ref,
                                        top_cause, causes, findings, downstream_project, target,
                                        note_url, gitlab_calls)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .await
            .map_err(db)?;
        let resolve = c
            .prepare_cached(
                "UPDATE diagnoses SET status = 'resolved', resolved_at = $1,
                        resolved_pipeline_id = $2
                  WHERE target = $3 AND status = 'open' AND pipeline_id < $2",
            )
            .await
            .map_err(db)?;
        let resolved_already = c
            .prepare_cached(
                "UPDATE diagnoses d SET status = 'resolved', resolved_at = $1,
                        resolved_pipeline_id = c.pipeline_id
                   FROM comments c
                  WHERE c.target = $2 AND c.status = 'resolved' AND d.target = $2
                    AND d.delivery_id = $3 AND d.status = 'open' AND d.pipeline_id < c.pipeline_id",
            )
            .await
            .map_err(db)?;
        let tx = c.transaction().await.map_err(db)?;
        if tx.execute(&done, &params).await.map_err(db)? != 1 {
            // The lease was lost: nothing is recorded.
            return Ok(false);
        }
        for d in &history.diagnoses {
            let causes = to_json_list(&d.causes);
            let findings = to_json_list(&d.findings);
            tx.execute(
                &insert,
                &[
                    &claim.id.0,
                    &now.0,
                    &d.project_id.sql(),
                    &d.project_path,
                    &d.pipeline_id.sql(),
                    &d.pipeline_url,
                    &d.job_name,
                    &d.job_url,
                    &d.git_ref,
                    &d.top_cause,
                    &causes,
                    &findings,
                    &d.downstream_project,
                    &d.target,
                    &d.note_url,
                    &i64::from(d.gitlab_calls),
                ],
            )
            .await
            .map_err(db)?;
        }
        if let Some(r) = &history.resolved {
            tx.execute(&resolve, &[&now.0, &r.pipeline_id.sql(), &r.target])
                .await
                .map_err(db)?;
        }
        // A late diagnosis of a pipeline older than the one that already resolved its comment
        // (the comment was left as it was) is resolved from the start.
        for target in history.targets() {
            tx.execute(&resolved_already, &[&now.0, &target, &claim.id.0])
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn retry_at(
        &self,
        claim: &Claimed,
        error: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE deliveries SET state = 'queued', next_attempt_at = $1, last_error = $2,
                    lease_owner = NULL
              WHERE id = $3 AND state = 'running' AND lease_owner = $4",
            &[&at.0, &error, &claim.id.0, &claim.owner],
        )
        .await
    }

    async fn park(&self, claim: &Claimed, error: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE deliveries SET state = 'parked', finished_at = $1, last_error = $2,
                    lease_owner = NULL
              WHERE id = $3 AND state = 'running' AND lease_owner = $4",
            &[&now.0, &error, &claim.id.0, &claim.owner],
        )
        .await
    }

    async fn release(&self, claim: &Claimed, now: Timestamp) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE deliveries SET state = 'queued', next_attempt_at = $1, attempts = attempts - 1,
                    lease_owner = NULL
              WHERE id = $2 AND state = 'running' AND lease_owner = $3",
            &[&now.0, &claim.id.0, &claim.owner],
        )
        .await
    }

    async fn requeue(&self, id: DeliveryId, now: Timestamp) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE deliveries SET state = 'queued', next_attempt_at = $1, attempts = 0,
                    finished_at = NULL
              WHERE id = $2 AND state IN ('parked', 'done')",
            &[&now.0, &id.0],
        )
        .await
    }

    async fn get(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(record_query!("d.id = $1"))
            .await
            .map_err(db)?;
        let row = c.query_opt(&statement, &[&id.0]).await.map_err(db)?;
        Ok(row.as_ref().map(delivery_record))
    }

    async fn find_by_dedup_key(&self, key: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(record_query!("d.dedup_key = $1"))
            .await
            .map_err(db)?;
        let rows = c.query(&statement, &[&key]).await.map_err(db)?;
        Ok(rows.iter().map(delivery_record).collect())
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached("SELECT COUNT(*) FROM deliveries")
            .await
            .map_err(db)?;
        let row = c.query_one(&statement, &[]).await.map_err(db)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(
                "SELECT state, COUNT(*), MIN(received_at) FROM deliveries
                  WHERE state <> 'done' GROUP BY state",
            )
            .await
            .map_err(db)?;
        let rows = c.query(&statement, &[]).await.map_err(db)?;
        let mut stats = QueueStats::default();
        for r in rows {
            let state: String = r.get(0);
            let oldest = r.get::<_, Option<i64>>(2).map(Timestamp);
            stats.add(&state, r.get::<_, i64>(1) as u64, oldest);
        }
        Ok(stats)
    }

    async fn lock_comment(
        &self,
        target: &str,
        project_id: ProjectId,
        git_ref: Option<&str>,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<CommentRecord>, StoreError> {
        let mut c = self.conn().await?;
        let create = c
            .prepare_cached(
                "INSERT INTO comments (target, project_id, git_ref, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (target) DO NOTHING",
            )
.await
.map_err(db)?;
        let lock_row = c
            .prepare_cached("SELECT lock_owner FROM comments WHERE target = $1 FOR UPDATE")
            .await
            .map_err(db)?;
        let take = c
            .prepare_cached(concat!(
                "UPDATE comments SET lock_owner = $2, lock_until = $3
                  WHERE target = $1 AND (lock_until <= $4 OR lock_owner = $2)
              RETURNING ",
                comment_columns!()
            ))
            .await
            .map_err(db)?;
        let until = until.0;
        let tx = c.transaction().await.map_err(db)?;
        tx.execute(&create, &[&target, &project_id.sql(), &git_ref, &now.0])
            .await
            .map_err(db)?;
        // The row lock orders lockers of one target: the owner read here is the one replaced.
        let previous: Option<String> = tx
            .query_one(&lock_row, &[&target])
            .await
            .map_err(db)?
            .get(0);
        let taken_over = taken_over(previous.as_deref(), owner);
        let row = tx
            .query_opt(&take, &[&target, &owner, &until, &now.0])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(row.map(|r| CommentRecord {
            taken_over,
            ..comment_record(&r)
        }))
    }

    async fn unlock_comment(
        &self,
        target: &str,
        owner: &str,
        update: Option<CommentUpdate>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        match update {
            None => {
                self.update_one(
                    "UPDATE comments SET lock_owner = NULL, lock_until = 0
                      WHERE target = $1 AND lock_owner = $2",
                    &[&target, &owner],
                )
                .await
            }
            Some(u) => {
                self.update_one(
                    "UPDATE comments SET lock_owner = NULL, lock_until = 0, note_id = $3,
                            discussion_id = $4, pipeline_id = $5, causes = $6, status = $7,
                            updated_at = $8, body = $9
                      WHERE target = $1 AND lock_owner = $2",
                    &[
                        &target,
                        &owner,
                        &u.note_id.sql(),
                        &u.discussion_id,
                        &u.pipeline_id.sql(),
                        &u.causes,
                        &u.status,
                        &now.0,
                        &u.body,
                    ],
                )
                .await
            }
        }
    }

    async fn comment(&self, target: &str) -> Result<Option<CommentRecord>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(concat!(
                "SELECT ",
                comment_columns!(),
                " FROM comments WHERE target = $1"
            ))
            .await
            .map_err(db)?;
        let row = c.query_opt(&statement, &[&target]).await.map_err(db)?;
        Ok(row.as_ref().map(comment_record))
    }

    async fn comment_for_ref(
        &self,
        project_id: ProjectId,
        git_ref: &str,
    ) -> Result<Option<CommentRecord>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(concat!(
                "SELECT ",
                comment_columns!(),
                " FROM comments WHERE project_id = $1 AND git_ref = $2 AND note_id IS NOT NULL
                  ORDER BY updated_at DESC LIMIT 1"
            ))
            .await
            .map_err(db)?;
        let row = c
            .query_opt(&statement, &[&project_id.sql(), &git_ref])
            .await
            .map_err(db)?;
        Ok(row.as_ref().map(comment_record))
    }

    async fn command_allowed(
        &self,
        target: &str,
        not_before: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let not_before = not_before.0;
        self.update_one(
            "INSERT INTO command_runs (target, last_run_at) VALUES ($1, $2)
             ON CONFLICT (target) DO UPDATE SET last_run_at = excluded.last_run_at
              WHERE command_runs.last_run_at <= $3",
            &[&target, &now.0, &not_before],
        )
        .await
    }

    async fn enqueue_chat(
        &self,
        chat: NewChat,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<ChatQueued, StoreError> {
        let mut c = self.conn().await?;
        let lock = c
            .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .await
            .map_err(db)?;
        let open = c
            .prepare_cached(
                "SELECT id FROM chat_messages WHERE group_key = $1 AND window_until > $2
                  ORDER BY id DESC LIMIT 1",
            )
            .await
            .map_err(db)?;
        let fold = c
            .prepare_cached(
                "UPDATE chat_messages SET repeats = repeats + 1,
                        window_until = CASE WHEN $2 THEN GREATEST(window_until, $3) ELSE window_until END
                  WHERE id = $1",
            )
.await
.map_err(db)?;
        let insert = c
            .prepare_cached(
                "INSERT INTO chat_messages (group_key, route, headline, payload, window_until, state,
                                            next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) RETURNING id",
            )
.await
.map_err(db)?;
        let until = until.0;
        let tx = c.transaction().await.map_err(db)?;
        // One enqueuer per group at a time, in every replica: the look-up and the insert or
        // fold that follows it see the same group.
        tx.execute(&lock, &[&CHAT_GROUP_LOCK, &chat.group_key])
            .await
            .map_err(db)?;
        let queued = match tx
            .query_opt(&open, &[&chat.group_key, &now.0])
            .await
            .map_err(db)?
        {
            Some(row) => {
                let id: i64 = row.get(0);
                tx.execute(&fold, &[&id, &chat.sliding, &until])
                    .await
                    .map_err(db)?;
                ChatQueued::Folded(id)
            }
            None => {
                let row = tx
                    .query_one(
                        &insert,
                        &[
                            &chat.group_key,
                            &chat.route,
                            &chat.headline,
                            &chat.payload,
                            &until,
                            &now.0,
                        ],
                    )
                    .await
                    .map_err(db)?;
                ChatQueued::New(row.get(0))
            }
        };
        tx.commit().await.map_err(db)?;
        Ok(queued)
    }

    async fn claim_chat(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<ChatJob>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(
                "UPDATE chat_messages SET lease_owner = $1, next_attempt_at = $2, attempts = attempts + 1
                  WHERE id = (SELECT id FROM chat_messages
                               WHERE (state = 'pending' OR repeats > repeats_sent)
                                 AND next_attempt_at <= $3
                                 AND (state = 'pending' OR (state = 'sent' AND window_until <= $3))
                               ORDER BY next_attempt_at, id LIMIT 1
                               FOR UPDATE SKIP LOCKED)
              RETURNING id, route, headline, payload, state, repeats, repeats_sent, window_until,
                        attempts",
            )
.await
.map_err(db)?;
        let until = until.0;
        let row = c
            .query_opt(&statement, &[&owner, &until, &now.0])
            .await
            .map_err(db)?;
        Ok(row.map(|r| ChatJob {
            id: r.get(0),
            route: r.get(1),
            headline: r.get(2),
            payload: r.get(3),
            first: r.get::<_, String>(4) == "pending",
            repeats: r.get(5),
            repeats_sent: r.get(6),
            window_until: Timestamp(r.get(7)),
            attempts: r.get::<_, i64>(8) as u32,
            owner: owner.to_string(),
        }))
    }

    async fn settle_chat(
        &self,
        job: &ChatJob,
        result: ChatResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        match result {
            ChatResult::Sent { repeats } => {
                self.update_one(
                    "UPDATE chat_messages SET state = 'sent', sent_at = COALESCE(sent_at, $3),
                            repeats_sent = GREATEST(repeats_sent, $4), attempts = 0, last_error = NULL,
                            next_attempt_at = window_until, lease_owner = NULL
                      WHERE id = $1 AND lease_owner = $2",
                    &[&job.id, &job.owner, &now.0, &repeats],
                )
                .await
            }
            ChatResult::Failed {
                error,
                retry_at: Some(at),
            } => {
                self.update_one(
                    "UPDATE chat_messages SET next_attempt_at = $3, last_error = $4, lease_owner = NULL
                      WHERE id = $1 AND lease_owner = $2",
                    &[&job.id, &job.owner, &at.0, &error],
                )
                .await
            }
            ChatResult::Failed {
                error,
                retry_at: None,
            } => {
                self.update_one(
                    "UPDATE chat_messages
                        SET state = CASE WHEN state = 'pending' THEN 'failed' ELSE state END,
                            repeats_sent = repeats, attempts = 0, last_error = $3, lease_owner = NULL,
                            next_attempt_at = window_until
                      WHERE id = $1 AND lease_owner = $2",
                    &[&job.id, &job.owner, &error],
                )
                .await
            }
        }
    }

    async fn chat_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(
                "SELECT state, COUNT(*) FROM chat_messages GROUP BY state ORDER BY state",
            )
            .await
            .map_err(db)?;
        let rows = c.query(&statement, &[]).await.map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    async fn next_chat_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(
                "SELECT MIN(GREATEST(next_attempt_at,
                                     CASE WHEN state = 'sent' THEN window_until ELSE 0 END))
                   FROM chat_messages WHERE state = 'pending' OR repeats > repeats_sent",
            )
            .await
            .map_err(db)?;
        let row = c.query_one(&statement, &[]).await.map_err(db)?;
        Ok(row.get::<_, Option<i64>>(0).map(Timestamp))
    }

    /// The diagnoses matching `filter`, newest first: up to `limit + 1` rows (the extra one
    /// tells that another page follows).
    async fn list_diagnoses(
        &self,
        filter: &DiagnosisFilter,
    ) -> Result<Vec<DiagnosisRecord>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(concat!(
                "SELECT ",
                diagnosis_columns!(),
                " FROM diagnoses d
                  WHERE ($1::bigint IS NULL OR d.project_id = $1)
                    AND ($2::text IS NULL OR lower(d.project_path) = lower($2))
                    AND ($3::bigint IS NULL OR d.pipeline_id = $3)
                    AND ($4::text IS NULL OR d.top_cause = $4
                         OR d.causes::jsonb @> jsonb_build_array($4::text))
                    AND ($5::text IS NULL OR d.status = $5)
                    AND ($6::bigint IS NULL OR d.recorded_at >= $6)
                    AND ($7::bigint IS NULL OR d.id < $7)
                  ORDER BY d.id DESC LIMIT $8"
            ))
            .await
            .map_err(db)?;
        let rows = c
            .query(
                &statement,
                &[
                    &filter.project_id(),
                    &filter.project_path(),
                    &filter.pipeline_id(),
                    &filter.cause,
                    &filter.status.map(DiagnosisStatus::as_str),
                    &filter.since.map(|t| t.0),
                    &filter.before_id,
                    &(i64::from(filter.limit) + 1),
                ],
            )
            .await
            .map_err(db)?;
        Ok(rows.iter().map(diagnosis_record).collect())
    }

    async fn diagnosis_stats(&self, since: Timestamp) -> Result<DiagnosisStats, StoreError> {
        let since = since.0;
        let c = self.conn().await?;
        let by_cause = c
            .prepare_cached(
                "SELECT top_cause, COUNT(*) FROM diagnoses WHERE recorded_at >= $1
                  GROUP BY top_cause",
            )
            .await
            .map_err(db)?;
        let by_project = c
            .prepare_cached(
                "SELECT project_id, MAX(project_path), COUNT(*) FROM diagnoses
                  WHERE recorded_at >= $1 GROUP BY project_id",
            )
            .await
            .map_err(db)?;
        let mut stats = DiagnosisStats::default();
        for r in c.query(&by_cause, &[&since]).await.map_err(db)? {
            stats.add_cause(r.get(0), r.get::<_, i64>(1) as u64);
        }
        for r in c.query(&by_project, &[&since]).await.map_err(db)? {
            stats.add_project(
                ProjectId::from_sql(r.get(0)),
                r.get(1),
                r.get::<_, i64>(2) as u64,
            );
        }
        Ok(stats)
    }

    async fn list_parked(&self, limit: u32) -> Result<Vec<ParkedDelivery>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(
                "SELECT id, event, received_at, finished_at, attempts, last_error FROM deliveries
                  WHERE state = 'parked' ORDER BY id DESC LIMIT $1",
            )
            .await
            .map_err(db)?;
        let rows = c
            .query(&statement, &[&i64::from(limit)])
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| ParkedDelivery {
                id: DeliveryId(r.get(0)),
                event: r.get(1),
                received_at: Timestamp(r.get(2)),
                parked_at: r.get::<_, Option<i64>>(3).map(Timestamp),
                attempts: r.get::<_, i64>(4) as u32,
                last_error: r.get(5),
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let c = self.conn().await?;
        c.simple_query("SELECT 1").await.map_err(db)?;
        Ok(())
    }

    /// Refuses every later call and closes the idle connections; lent ones close when returned.
    async fn close(&self) {
        self.pool.close();
    }
}

/// Applies the missing migrations in one transaction under an advisory lock, so replicas that
/// start together migrate once.
async fn migrate(client: &mut ClientWrapper) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(include_str!("migrations/postgres/schema_migrations.sql"))
        .await?;
    let applied: Vec<i64> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[version, &Timestamp::now().0],
        )
        .await?;
    }
    tx.commit().await
}

//! PostgreSQL backend, for several replicas sharing one queue.
//!
//! Same tables and the same semantics as the SQLite backend. What SQLite gets from its single
//! writer, PostgreSQL gets from row locks: a claim takes the next due row with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claims from any replica never hand out one delivery
//! twice; completions and retries are conditional on the lease owner; a chat group's fold takes
//! an advisory lock on the group key; of concurrent preflight sweep claims one starts a sweep,
//! and the unique index on unfinished sweeps turns the others away. Every write is its own
//! transaction, committed before the call returns (PostgreSQL groups concurrent commits into
//! one WAL flush by itself).
//!
//! Connections come from a deadpool-postgres pool of at most [`POOL_SIZE`], each with its
//! prepared statements; a closed connection is dropped and a new one made on next use. No TLS:
//! the server is expected on a trusted network or the same host.
//!
//! This file holds the pool, the migrations and the [`Backend`] impl, which hands each call to
//! the store's methods by concern: deliveries in `queue.rs`, comment locks and records in
//! `comments.rs`, diagnoses in `history.rs`, the chat outbox in `chat.rs`, preflight sweeps and
//! the trigger map in `preflight.rs`, the dashboard's reads in `dashboard.rs`.

mod chat;
mod comments;
mod dashboard;
mod history;
mod preflight;
mod queue;

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, Config, NoTls};

use super::{
    Backend, ChatJob, ChatQueued, ChatResult, Claimed, CommentRecord, CommentUpdate, DeliveryId,
    DeliveryRecord, DiagnosisDetail, DiagnosisFilter, DiagnosisRecord, DiagnosisStats, Enqueued,
    FindingChanges, History, NewChat, NewDelivery, Overview, ParkedDelivery, PreflightCounts,
    PreflightEdgeRow, PreflightFindingRow, QueueStats, StoreError, SweepClaim, SweepInfo,
};
use crate::ids::ProjectId;
use crate::timestamp::Timestamp;

/// Schema versions, applied in order once each (the SQLite schema, in PostgreSQL types).
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../migrations/postgres/0001_deliveries.sql"),
    ),
    (
        2,
        include_str!("../migrations/postgres/0002_comments_chat_commands.sql"),
    ),
    (3, include_str!("../migrations/postgres/0003_diagnoses.sql")),
    (4, include_str!("../migrations/postgres/0004_preflight.sql")),
    (5, include_str!("../migrations/postgres/0005_dashboard.sql")),
];

/// Advisory lock key held while migrating (the bytes of `triggerd`; never to change).
const MIGRATION_LOCK: i64 = 0x7472_6967_6765_7264;

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
        self.enqueue(d).await
    }

    async fn claim(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Claimed>, StoreError> {
        self.claim(owner, until, now).await
    }

    async fn complete(
        &self,
        claim: &Claimed,
        outcome: &str,
        history: History,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.complete(claim, outcome, history, now).await
    }

    async fn retry_at(
        &self,
        claim: &Claimed,
        error: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.retry_at(claim, error, at).await
    }

    async fn park(&self, claim: &Claimed, error: &str, now: Timestamp) -> Result<bool, StoreError> {
        self.park(claim, error, now).await
    }

    async fn release(&self, claim: &Claimed, now: Timestamp) -> Result<bool, StoreError> {
        self.release(claim, now).await
    }

    async fn requeue(&self, id: DeliveryId, now: Timestamp) -> Result<bool, StoreError> {
        self.requeue(id, now).await
    }

    async fn get(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        self.get(id).await
    }

    async fn find_by_dedup_key(&self, key: &str) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.find_by_dedup_key(key).await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.count().await
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        self.stats().await
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
        self.lock_comment(target, project_id, git_ref, owner, until, now)
            .await
    }

    async fn unlock_comment(
        &self,
        target: &str,
        owner: &str,
        update: Option<CommentUpdate>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.unlock_comment(target, owner, update, now).await
    }

    async fn comment(&self, target: &str) -> Result<Option<CommentRecord>, StoreError> {
        self.comment(target).await
    }

    async fn comment_for_ref(
        &self,
        project_id: ProjectId,
        git_ref: &str,
    ) -> Result<Option<CommentRecord>, StoreError> {
        self.comment_for_ref(project_id, git_ref).await
    }

    async fn command_allowed(
        &self,
        target: &str,
        not_before: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.command_allowed(target, not_before, now).await
    }

    async fn enqueue_chat(
        &self,
        chat: NewChat,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<ChatQueued, StoreError> {
        self.enqueue_chat(chat, until, now).await
    }

    async fn claim_chat(
        &self,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<ChatJob>, StoreError> {
        self.claim_chat(owner, until, now).await
    }

    async fn settle_chat(
        &self,
        job: &ChatJob,
        result: ChatResult,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.settle_chat(job, result, now).await
    }

    async fn chat_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.chat_counts().await
    }

    async fn next_chat_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.next_chat_due().await
    }

    async fn list_diagnoses(
        &self,
        filter: &DiagnosisFilter,
    ) -> Result<Vec<DiagnosisRecord>, StoreError> {
        self.list_diagnoses(filter).await
    }

    async fn diagnosis_stats(&self, since: Timestamp) -> Result<DiagnosisStats, StoreError> {
        self.diagnosis_stats(since).await
    }

    async fn list_parked(&self, limit: u32) -> Result<Vec<ParkedDelivery>, StoreError> {
        self.list_parked(limit).await
    }

    async fn claim_sweep(
        &self,
        owner: &str,
        until: Timestamp,
        finished_before: Timestamp,
        now: Timestamp,
    ) -> Result<Option<SweepClaim>, StoreError> {
        self.claim_sweep(owner, until, finished_before, now).await
    }

    async fn sweep_progress(
        &self,
        claim: &SweepClaim,
        cursor: u64,
        state: &str,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.sweep_progress(claim, cursor, state, until).await
    }

    async fn finish_sweep(&self, claim: &SweepClaim, now: Timestamp) -> Result<bool, StoreError> {
        self.finish_sweep(claim, now).await
    }

    async fn last_sweep(&self) -> Result<Option<SweepInfo>, StoreError> {
        self.last_sweep().await
    }

    async fn replace_preflight_project(
        &self,
        project: &str,
        edges: Vec<PreflightEdgeRow>,
        findings: Vec<PreflightFindingRow>,
        now: Timestamp,
    ) -> Result<FindingChanges, StoreError> {
        self.replace_preflight_project(project, edges, findings, now)
            .await
    }

    async fn remove_preflight_projects_not_in(
        &self,
        projects: &[String],
    ) -> Result<FindingChanges, StoreError> {
        self.remove_preflight_projects_not_in(projects).await
    }

    async fn list_preflight_edges(
        &self,
        project: Option<&str>,
        after: Option<(String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightEdgeRow>, StoreError> {
        self.list_preflight_edges(project, after, limit).await
    }

    async fn list_preflight_findings(
        &self,
        project: Option<&str>,
        cause: Option<&str>,
        after: Option<(String, String, String)>,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        self.list_preflight_findings(project, cause, after, limit)
            .await
    }

    async fn preflight_counts(&self) -> Result<PreflightCounts, StoreError> {
        self.preflight_counts().await
    }

    async fn preflight_map(
        &self,
        group: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<PreflightEdgeRow>, Vec<PreflightFindingRow>), StoreError> {
        self.preflight_map(group, limit).await
    }

    async fn expiring_findings(
        &self,
        from: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<PreflightFindingRow>, StoreError> {
        self.expiring_findings(from, until, limit).await
    }

    async fn diagnosis(&self, id: i64) -> Result<Option<DiagnosisDetail>, StoreError> {
        self.diagnosis_detail(id).await
    }

    async fn overview(&self, now: Timestamp) -> Result<Overview, StoreError> {
        self.overview(now).await
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
    tx.batch_execute(include_str!("../migrations/postgres/schema_migrations.sql"))
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

//! Deliveries: enqueue, claim, complete, retry, park, release, requeue, look-ups and queue stats.
//! A completion that carries diagnoses writes them through `history.rs`, in one transaction.

use tokio_postgres::Row;

use super::{db, PostgresStore};
use crate::store::{
    Claimed, DeliveryId, DeliveryRecord, DeliveryState, Enqueued, History, NewDelivery,
    ParkedDelivery, QueueStats, StoreError,
};
use crate::timestamp::Timestamp;

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

impl PostgresStore {
    pub(super) async fn enqueue(&self, d: NewDelivery) -> Result<Enqueued, StoreError> {
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

    pub(super) async fn claim(
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

    pub(super) async fn complete(
        &self,
        claim: &Claimed,
        outcome: &str,
        history: History,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let c = self.conn().await?;
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
        Self::complete_with_history(c, &done, &params, claim, history, now).await
    }

    pub(super) async fn retry_at(
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

    pub(super) async fn park(
        &self,
        claim: &Claimed,
        error: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE deliveries SET state = 'parked', finished_at = $1, last_error = $2,
                    lease_owner = NULL
              WHERE id = $3 AND state = 'running' AND lease_owner = $4",
            &[&now.0, &error, &claim.id.0, &claim.owner],
        )
        .await
    }

    pub(super) async fn release(
        &self,
        claim: &Claimed,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE deliveries SET state = 'queued', next_attempt_at = $1, attempts = attempts - 1,
                    lease_owner = NULL
              WHERE id = $2 AND state = 'running' AND lease_owner = $3",
            &[&now.0, &claim.id.0, &claim.owner],
        )
        .await
    }

    pub(super) async fn requeue(&self, id: DeliveryId, now: Timestamp) -> Result<bool, StoreError> {
        self.update_one(
            "UPDATE deliveries SET state = 'queued', next_attempt_at = $1, attempts = 0,
                    finished_at = NULL
              WHERE id = $2 AND state IN ('parked', 'done')",
            &[&now.0, &id.0],
        )
        .await
    }

    pub(super) async fn get(&self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(record_query!("d.id = $1"))
            .await
            .map_err(db)?;
        let row = c.query_opt(&statement, &[&id.0]).await.map_err(db)?;
        Ok(row.as_ref().map(delivery_record))
    }

    pub(super) async fn find_by_dedup_key(
        &self,
        key: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached(record_query!("d.dedup_key = $1"))
            .await
            .map_err(db)?;
        let rows = c.query(&statement, &[&key]).await.map_err(db)?;
        Ok(rows.iter().map(delivery_record).collect())
    }

    pub(super) async fn count(&self) -> Result<u64, StoreError> {
        let c = self.conn().await?;
        let statement = c
            .prepare_cached("SELECT COUNT(*) FROM deliveries")
            .await
            .map_err(db)?;
        let row = c.query_one(&statement, &[]).await.map_err(db)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub(super) async fn stats(&self) -> Result<QueueStats, StoreError> {
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

    pub(super) async fn list_parked(&self, limit: u32) -> Result<Vec<ParkedDelivery>, StoreError> {
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
}

//! The chat outbox: enqueue (folding repeats per group), claim, settle, counts and next due time.

use super::{db, PostgresStore};
use crate::store::{ChatJob, ChatQueued, ChatResult, NewChat, StoreError};
use crate::timestamp::Timestamp;

/// First key of the two-key advisory locks that serialise folding per chat group.
const CHAT_GROUP_LOCK: i32 = 0x7464_6367;

impl PostgresStore {
    pub(super) async fn enqueue_chat(
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

    pub(super) async fn claim_chat(
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

    pub(super) async fn settle_chat(
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

    pub(super) async fn chat_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
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

    pub(super) async fn next_chat_due(&self) -> Result<Option<Timestamp>, StoreError> {
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
}

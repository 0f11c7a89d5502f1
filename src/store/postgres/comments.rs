//! Comments: the per-target comment lock and record, and the per-target command rate limit.

use tokio_postgres::Row;

use super::{db, PostgresStore};
use crate::ids::{NoteId, PipelineId, ProjectId};
use crate::store::{taken_over, CommentRecord, CommentUpdate, SqlId, StoreError};
use crate::timestamp::Timestamp;

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

impl PostgresStore {
    pub(super) async fn lock_comment(
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

    pub(super) async fn unlock_comment(
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

    pub(super) async fn comment(&self, target: &str) -> Result<Option<CommentRecord>, StoreError> {
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

    pub(super) async fn comment_for_ref(
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

    pub(super) async fn command_allowed(
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
}

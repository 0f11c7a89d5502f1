//! The SQLite writer thread: the only write connection. It takes every waiting write, applies
//! them in one transaction and commits once, so concurrent webhooks and workers share each
//! fsync (group commit); a batch that fails is applied again one write at a time.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::preflight::{self, PreflightWrite};
use super::{comment_record, unavailable, COMMENT_COLUMNS};
use crate::store::{
    taken_over, to_json_list, ChatJob, ChatQueued, ChatResult, Claimed, CommentRecord,
    CommentUpdate, DeliveryId, Enqueued, FindingChanges, History, NewChat, NewDelivery, SqlId,
    StoreError, SweepClaim,
};
use crate::timestamp::Timestamp;

/// Most jobs applied in one transaction.
const MAX_BATCH: usize = 512;

/// One write, applied by the writer thread.
pub(super) enum Write {
    Enqueue(NewDelivery),
    Claim {
        owner: String,
        lease_until: i64,
        now: i64,
    },
    /// Conditional on the claim still being held: `(id, owner)`.
    Complete {
        id: i64,
        owner: String,
        outcome: String,
        history: History,
        now: i64,
    },
    Retry {
        id: i64,
        owner: String,
        error: String,
        at: i64,
    },
    Park {
        id: i64,
        owner: String,
        error: String,
        now: i64,
    },
    Release {
        id: i64,
        owner: String,
        now: i64,
    },
    Requeue {
        id: i64,
        now: i64,
    },
    LockComment {
        target: String,
        project_id: i64,
        git_ref: Option<String>,
        owner: String,
        until: i64,
        now: i64,
    },
    UnlockComment {
        target: String,
        owner: String,
        update: Option<CommentUpdate>,
        now: i64,
    },
    Command {
        target: String,
        not_before: i64,
        now: i64,
    },
    EnqueueChat {
        chat: NewChat,
        until: i64,
        now: i64,
    },
    ClaimChat {
        owner: String,
        until: i64,
        now: i64,
    },
    SettleChat {
        id: i64,
        owner: String,
        result: ChatResult,
        now: i64,
    },
    /// A preflight sweep or trigger map write (`preflight.rs`).
    Preflight(PreflightWrite),
}

pub(super) enum Written {
    Enqueued(Enqueued),
    Claimed(Option<Claimed>),
    Updated(bool),
    Comment(Option<CommentRecord>),
    Chat(ChatQueued),
    ChatJob(Option<ChatJob>),
    Sweep(Option<SweepClaim>),
    Changes(FindingChanges),
}

pub(super) struct Job {
    pub(super) write: Write,
    pub(super) reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// Records a completed delivery's diagnoses (each with its causes in `diagnosis_causes`) and the
/// resolution it made, inside its transaction.
fn record_history(
    tx: &Transaction<'_>,
    delivery: i64,
    history: &History,
    now: i64,
) -> rusqlite::Result<()> {
    for d in &history.diagnoses {
        tx.prepare_cached(
            "INSERT INTO diagnoses (delivery_id, recorded_at, project_id, project_path, pipeline_id,
                                    pipeline_url, job_name, job_url, git_ref, top_cause, causes,
                                    findings, downstream_project, target, note_url, gitlab_calls,
                                    report)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?
        .execute(params![
            delivery,
            now,
            d.project_id.sql(),
            d.project_path,
            d.pipeline_id.sql(),
            d.pipeline_url,
            d.job_name,
            d.job_url,
            d.git_ref,
            d.top_cause,
            to_json_list(&d.causes),
            to_json_list(&d.findings),
            d.downstream_project,
            d.target,
            d.note_url,
            d.gitlab_calls,
            d.report,
        ])?;
        let id = tx.last_insert_rowid();
        let mut cause = tx
            .prepare_cached("INSERT INTO diagnosis_causes (cause, diagnosis_id) VALUES (?1, ?2)")?;
        for c in d.indexed_causes() {
            cause.execute(params![c, id])?;
        }
    }
    if let Some(r) = &history.resolved {
        tx.prepare_cached(
            "UPDATE diagnoses SET status = 'resolved', resolved_at = ?1, resolved_pipeline_id = ?2
              WHERE target = ?3 AND status = 'open' AND pipeline_id < ?2",
        )?
        .execute(params![now, r.pipeline_id.sql(), r.target])?;
    }
    // A late diagnosis of a pipeline older than the one that already resolved its comment
    // (the comment was left as it was) is resolved from the start.
    for target in history.targets() {
        tx.prepare_cached(
            "UPDATE diagnoses SET status = 'resolved', resolved_at = ?1,
                    resolved_pipeline_id = (SELECT pipeline_id FROM comments WHERE target = ?2)
              WHERE delivery_id = ?3 AND target = ?2 AND status = 'open'
                AND pipeline_id < (SELECT pipeline_id FROM comments
                                    WHERE target = ?2 AND status = 'resolved')",
        )?
        .execute(params![now, target, delivery])?;
    }
    Ok(())
}

/// The writer: waits for jobs, applies every waiting job in one transaction, commits once.
/// When a batch fails, its jobs are applied again one by one, so one bad job fails alone.
pub(super) fn writer_thread(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = match apply_all(&mut conn, &batch) {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(_) => batch
                .iter()
                .map(|job| {
                    apply_all(&mut conn, std::slice::from_ref(job))
                        .map(|mut r| r.remove(0))
                        .map_err(unavailable)
                })
                .collect::<Vec<_>>(),
        };
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

fn apply_all(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Vec<Written>> {
    let tx = conn.transaction()?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        results.push(apply(&tx, &job.write)?);
    }
    tx.commit()?;
    Ok(results)
}

fn apply(tx: &Transaction<'_>, write: &Write) -> rusqlite::Result<Written> {
    match write {
        Write::Enqueue(d) => {
            let inserted: Option<i64> = tx
                .prepare_cached(
                    "INSERT INTO deliveries (dedup_key, event, event_uuid, instance, received_at, state, next_attempt_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?5)
                     ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
                )?
                .query_row(
                    params![d.dedup_key, d.event, d.event_uuid, d.instance, d.received_at.0],
                    |r| r.get(0),
                )
                .optional()?;
            match inserted {
                Some(id) => {
                    tx.prepare_cached("INSERT INTO delivery_bodies (delivery_id, body) VALUES (?1, ?2)")?
                        .execute(params![id, d.body])?;
                    Ok(Written::Enqueued(Enqueued::New(DeliveryId(id))))
                }
                None => {
                    let id: i64 = tx
                        .prepare_cached("SELECT id FROM deliveries WHERE dedup_key = ?1")?
                        .query_row([&d.dedup_key], |r| r.get(0))?;
                    Ok(Written::Enqueued(Enqueued::Duplicate(DeliveryId(id))))
                }
            }
        }
        Write::Claim {
            owner,
            lease_until,
            now,
        } => {
            let row = tx
                .prepare_cached(
                    "UPDATE deliveries
                        SET state = 'running', lease_owner = ?1, next_attempt_at = ?2, attempts = attempts + 1
                      WHERE id = (SELECT id FROM deliveries
                                   WHERE state IN ('queued', 'running') AND next_attempt_at <= ?3
                                   ORDER BY next_attempt_at LIMIT 1)
                  RETURNING id, event, event_uuid, instance, received_at, attempts",
                )?
                .query_row(params![owner, lease_until, now], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .optional()?;
            let Some((id, event, event_uuid, instance, received_at, attempts)) = row else {
                return Ok(Written::Claimed(None));
            };
            let body: Vec<u8> = tx
                .prepare_cached("SELECT body FROM delivery_bodies WHERE delivery_id = ?1")?
                .query_row([id], |r| r.get(0))?;
            Ok(Written::Claimed(Some(Claimed {
                id: DeliveryId(id),
                event,
                event_uuid,
                instance,
                received_at: Timestamp(received_at),
                attempts: attempts as u32,
                body,
                owner: owner.clone(),
            })))
        }
        Write::Complete {
            id,
            owner,
            outcome,
            history,
            now,
        } => {
            let updated = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = 'done', finished_at = ?1, lease_owner = NULL, last_error = NULL
                      WHERE id = ?2 AND state = 'running' AND lease_owner = ?3",
                )?
                .execute(params![now, id, owner])?;
            if updated == 1 {
                tx.prepare_cached(
                    "INSERT INTO delivery_outcomes (delivery_id, recorded_at, outcome) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, now, outcome])?;
                record_history(tx, *id, history, *now)?;
            }
            Ok(Written::Updated(updated == 1))
        }
        Write::Retry { id, owner, error, at } => tx
            .prepare_cached(
                "UPDATE deliveries SET state = 'queued', next_attempt_at = ?1, last_error = ?2, lease_owner = NULL
                  WHERE id = ?3 AND state = 'running' AND lease_owner = ?4",
            )?
            .execute(params![at, error, id, owner])
            .map(|n| Written::Updated(n == 1)),
        Write::Park { id, owner, error, now } => tx
            .prepare_cached(
                "UPDATE deliveries SET state = 'parked', finished_at = ?1, last_error = ?2, lease_owner = NULL
                  WHERE id = ?3 AND state = 'running' AND lease_owner = ?4",
            )?
            .execute(params![now, error, id, owner])
            .map(|n| Written::Updated(n == 1)),
        Write::Release { id, owner, now } => tx
            .prepare_cached(
                "UPDATE deliveries SET state = 'queued', next_attempt_at = ?1, attempts = attempts - 1,
                        lease_owner = NULL
                  WHERE id = ?2 AND state = 'running' AND lease_owner = ?3",
            )?
            .execute(params![now, id, owner])
            .map(|n| Written::Updated(n == 1)),
        Write::Requeue { id, now } => tx
            .prepare_cached(
                "UPDATE deliveries SET state = 'queued', next_attempt_at = ?1, attempts = 0, finished_at = NULL
                  WHERE id = ?2 AND state IN ('parked', 'done')",
            )?
            .execute(params![now, id])
            .map(|n| Written::Updated(n == 1)),
        Write::LockComment {
            target,
            project_id,
            git_ref,
            owner,
            until,
            now,
        } => {
            tx.prepare_cached(
                "INSERT INTO comments (target, project_id, git_ref, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (target) DO NOTHING",
            )?
            .execute(params![target, project_id, git_ref, now])?;
            let previous: Option<String> = tx
                .prepare_cached("SELECT lock_owner FROM comments WHERE target = ?1")?
                .query_row([target], |r| r.get(0))?;
            let taken_over = taken_over(previous.as_deref(), owner);
            tx.prepare_cached(&format!(
                "UPDATE comments SET lock_owner = ?2, lock_until = ?3
                  WHERE target = ?1 AND (lock_until <= ?4 OR lock_owner = ?2)
              RETURNING {COMMENT_COLUMNS}"
            ))?
            .query_row(params![target, owner, until, now], comment_record)
            .optional()
            .map(|c| Written::Comment(c.map(|c| CommentRecord { taken_over, ..c })))
        }
        Write::UnlockComment {
            target,
            owner,
            update,
            now,
        } => match update {
            None => tx
                .prepare_cached(
                    "UPDATE comments SET lock_owner = NULL, lock_until = 0
                      WHERE target = ?1 AND lock_owner = ?2",
                )?
                .execute(params![target, owner]),
            Some(u) => tx
                .prepare_cached(
                    "UPDATE comments SET lock_owner = NULL, lock_until = 0, note_id = ?3,
                            discussion_id = ?4, pipeline_id = ?5, causes = ?6, status = ?7, updated_at = ?8,
                            body = ?9
                      WHERE target = ?1 AND lock_owner = ?2",
                )?
                .execute(params![
                    target,
                    owner,
                    u.note_id.sql(),
                    u.discussion_id,
                    u.pipeline_id.sql(),
                    u.causes,
                    u.status,
                    now,
                    u.body
                ]),
        }
        .map(|n| Written::Updated(n == 1)),
        Write::Command {
            target,
            not_before,
            now,
        } => tx
            .prepare_cached(
                "INSERT INTO command_runs (target, last_run_at) VALUES (?1, ?2)
                 ON CONFLICT (target) DO UPDATE SET last_run_at = excluded.last_run_at
                  WHERE command_runs.last_run_at <= ?3",
            )?
            .execute(params![target, now, not_before])
            .map(|n| Written::Updated(n == 1)),
        Write::EnqueueChat { chat, until, now } => {
            let open: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM chat_messages WHERE group_key = ?1 AND window_until > ?2
                      ORDER BY id DESC LIMIT 1",
                )?
                .query_row(params![chat.group_key, now], |r| r.get(0))
                .optional()?;
            if let Some(id) = open {
                tx.prepare_cached(
                    "UPDATE chat_messages SET repeats = repeats + 1,
                            window_until = CASE WHEN ?2 THEN MAX(window_until, ?3) ELSE window_until END
                      WHERE id = ?1",
                )?
                .execute(params![id, chat.sliding, until])?;
                return Ok(Written::Chat(ChatQueued::Folded(id)));
            }
            let id: i64 = tx
                .prepare_cached(
                    "INSERT INTO chat_messages (group_key, route, headline, payload, window_until, state,
                                                next_attempt_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6) RETURNING id",
                )?
                .query_row(
                    params![chat.group_key, chat.route, chat.headline, chat.payload, until, now],
                    |r| r.get(0),
                )?;
            Ok(Written::Chat(ChatQueued::New(id)))
        }
        Write::ClaimChat { owner, until, now } => tx
            .prepare_cached(
                "UPDATE chat_messages SET lease_owner = ?1, next_attempt_at = ?2, attempts = attempts + 1
                  WHERE id = (SELECT id FROM chat_messages
                               WHERE (state = 'pending' OR repeats > repeats_sent)
                                 AND next_attempt_at <= ?3
                                 AND (state = 'pending' OR (state = 'sent' AND window_until <= ?3))
                               ORDER BY next_attempt_at LIMIT 1)
              RETURNING id, route, headline, payload, state, repeats, repeats_sent, window_until, attempts",
            )?
            .query_row(params![owner, until, now], |r| {
                Ok(ChatJob {
                    id: r.get(0)?,
                    route: r.get(1)?,
                    headline: r.get(2)?,
                    payload: r.get(3)?,
                    first: r.get::<_, String>(4)? == "pending",
                    repeats: r.get(5)?,
                    repeats_sent: r.get(6)?,
                    window_until: Timestamp(r.get(7)?),
                    attempts: r.get::<_, i64>(8)? as u32,
                    owner: owner.clone(),
                })
            })
            .optional()
            .map(Written::ChatJob),
        Write::SettleChat {
            id,
            owner,
            result,
            now,
        } => match result {
            ChatResult::Sent { repeats } => tx
                .prepare_cached(
                    "UPDATE chat_messages SET state = 'sent', sent_at = COALESCE(sent_at, ?3),
                            repeats_sent = MAX(repeats_sent, ?4), attempts = 0, last_error = NULL,
                            next_attempt_at = window_until, lease_owner = NULL
                      WHERE id = ?1 AND lease_owner = ?2",
                )?
                .execute(params![id, owner, now, repeats]),
            ChatResult::Failed {
                error,
                retry_at: Some(at),
            } => tx
                .prepare_cached(
                    "UPDATE chat_messages SET next_attempt_at = ?3, last_error = ?4, lease_owner = NULL
                      WHERE id = ?1 AND lease_owner = ?2",
                )?
                .execute(params![id, owner, at.0, error]),
            ChatResult::Failed {
                error,
                retry_at: None,
            } => tx
                .prepare_cached(
                    "UPDATE chat_messages
                        SET state = CASE WHEN state = 'pending' THEN 'failed' ELSE state END,
                            repeats_sent = repeats, attempts = 0, last_error = ?3, lease_owner = NULL,
                            next_attempt_at = window_until
                      WHERE id = ?1 AND lease_owner = ?2",
                )?
                .execute(params![id, owner, error]),
        }
        .map(|n| Written::Updated(n == 1)),
        Write::Preflight(write) => preflight::apply(tx, write),
    }
}

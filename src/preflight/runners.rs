//! A `trigger:` job into a protected downstream branch runs as the user of the upstream
//! pipeline, who needs the rights to push or merge to that branch (and Developer) downstream.
//! Who that is: the user of the newest pipeline on the upstream default branch and the owners
//! of its active pipeline schedules. The diagnosis's permission checks then say, for each of
//! them, whether the trigger would be refused (`permission.protected_ref`, `permission.role`).

use super::check::{EdgeFinding, CAUSES};
use super::{Edge, EdgeKind};
use crate::cause::CauseId;
use crate::diagnosis::gather::gathered;
use crate::diagnosis::{permission, Facts, Verdict};
use crate::gitlab::model::{Project, UserBasic};
use crate::gitlab::Session;

/// At most this many users are checked per upstream project.
const MAX_USERS: usize = 5;

/// The users who run `upstream`'s pipelines: the newest pipeline's on the default branch, and
/// active schedule owners; none when they cannot be read.
async fn runners(session: &Session, upstream: &Project) -> Vec<(UserBasic, &'static str)> {
    let mut users: Vec<(UserBasic, &'static str)> = Vec::new();
    let mut add = |u: UserBasic, how: &'static str| {
        if users.len() < MAX_USERS && !users.iter().any(|(v, _)| v.id == u.id) {
            users.push((u, how));
        }
    };
    if let Some(branch) = upstream.default_branch.as_deref() {
        if let Ok(Some(p)) = session.latest_pipeline(upstream.id, branch).await {
            if let Some(u) = p.user {
                add(u, "ran the newest pipeline on the default branch");
            }
        }
    }
    if let Ok(schedules) = session.pipeline_schedules(upstream.id).await {
        for s in schedules.into_iter().filter(|s| s.active) {
            if let Some(u) = s.owner {
                add(u, "owns an active pipeline schedule");
            }
        }
    }
    users
}

/// For a `trigger:` edge into a protected branch: the permission findings for each user who
/// runs the upstream pipelines.
pub async fn findings(
    session: &Session,
    upstream: &Project,
    edge: &Edge,
    facts: &Facts,
) -> Vec<EdgeFinding> {
    let protected = facts.branch.found().is_some_and(|b| b.protected);
    let Some(down) = facts.downstream.found() else {
        return Vec::new();
    };
    if edge.kind != EdgeKind::MultiProject || !protected {
        return Vec::new();
    }
    let users = runners(session, upstream).await;
    if users.is_empty() {
        return Vec::new();
    }
    let mut facts = facts.clone();
    facts.protected_branches = gathered(
        session.protected_branches(down.id).await,
        &down.path_with_namespace,
    );
    let mut out = Vec::new();
    for (user, how) in users {
        if user.state.as_deref().is_some_and(|s| s != "active") {
            continue;
        }
        facts.subject.user_id = Some(user.id);
        facts.member = gathered(
            session.member(down.id, user.id).await,
            &down.path_with_namespace,
        );
        let name = user
            .username
            .clone()
            .unwrap_or_else(|| format!("user {}", user.id));
        for f in permission::check(&facts) {
            let wanted = matches!(
                f.cause,
                CauseId::PermissionProtectedRef | CauseId::PermissionRole
            ) && matches!(f.verdict, Verdict::Confirmed | Verdict::Likely)
                && CAUSES.contains(&f.cause);
            if !wanted {
                continue;
            }
            let summary = f.summary.replace(
                &format!("user {}", user.id),
                &format!("{name} (user {})", user.id),
            );
            let summary = format!("{name} {how}; {summary}");
            out.push(EdgeFinding {
                summary,
                ..EdgeFinding::of(edge, f)
            });
        }
    }
    out
}

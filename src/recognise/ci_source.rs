//! Loads the CI configuration a pipeline ran with: the merged YAML from CI lint at the
//! pipeline's commit where the bot may call it (includes resolved by GitLab), else the raw
//! `.gitlab-ci.yml` at that commit plus its local and project includes.

use crate::evidence::ci_config::{self, CiConfig, Include};
pub use crate::evidence::ci_source::{normalise_merged_yaml, ConfigSource, LoadedConfig};
use crate::gitlab::{GitlabError, ProjectRef, Session};
use crate::ids::{CommitSha, ProjectId};

/// Most include files fetched when GitLab's merged YAML is not available.
const MAX_INCLUDES: usize = 30;
/// Include nesting followed.
const MAX_DEPTH: usize = 4;

/// Why the configuration could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Gitlab(#[from] GitlabError),
    #[error("{file} is not valid CI configuration: {error}")]
    Invalid {
        file: String,
        error: ci_config::CiConfigError,
    },
}

/// Loads the configuration of `project` at `sha`. `config_path` is the project's
/// `ci_config_path` (`.gitlab-ci.yml` when empty).
pub async fn load(
    session: &Session,
    project: ProjectId,
    config_path: Option<&str>,
    sha: &CommitSha,
) -> Result<LoadedConfig, LoadError> {
    match session.ci_lint(project, &sha.0, None).await {
        Ok(lint) => {
            if let Some(merged) = lint.merged_yaml.filter(|m| !m.trim().is_empty()) {
                match ci_config::parse(&normalise_merged_yaml(&merged)) {
                    Ok(config) => {
                        return Ok(LoadedConfig {
                            config,
                            source: ConfigSource::MergedYaml,
                            unresolved: Vec::new(),
                        })
                    }
                    Err(error) => {
                        tracing::debug!(%error, "merged YAML unreadable; reading the files")
                    }
                }
            }
        }
        // CI lint has its own rate limit: the files may still be read. GitLab being down
        // stops here (the delivery is tried again later).
        Err(e @ GitlabError::Unavailable { .. }) => return Err(e.into()),
        Err(e) => tracing::debug!(error = %e, "CI lint unavailable; reading the files"),
    }
    let path = config_path
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.contains('@') && !p.contains("://"))
        .unwrap_or(".gitlab-ci.yml")
        .to_string();
    let own = ProjectRef::Id(project);
    let text = session.raw_file(&own, &path, &sha.0).await?;
    let mut config = ci_config::parse(&text).map_err(|error| LoadError::Invalid {
        file: path.clone(),
        error,
    })?;
    let mut unresolved = Vec::new();
    let mut fetched = 0usize;
    // Breadth-first over includes: (who includes, include, depth).
    let mut pending: Vec<(ProjectRef, String, Include, usize)> = config
        .includes()
        .into_iter()
        .map(|i| (own.clone(), sha.0.clone(), i, 1))
        .collect();
    let mut merged: Vec<CiConfig> = Vec::new();
    while let Some((from, at, include, depth)) = pending.pop() {
        let targets: Vec<(ProjectRef, String, String)> = match &include {
            Include::Local(file) if !file.contains('*') => {
                vec![(
                    from.clone(),
                    file.trim_start_matches('/').to_string(),
                    at.clone(),
                )]
            }
            Include::Project {
                project,
                file,
                git_ref,
            } => file
                .iter()
                .map(|f| {
                    (
                        ProjectRef::parse(project),
                        f.trim_start_matches('/').to_string(),
                        git_ref.clone().unwrap_or_else(|| "HEAD".into()),
                    )
                })
                .collect(),
            other => {
                unresolved.push(format!("{other}: not read by the bot"));
                continue;
            }
        };
        for (project, file, git_ref) in targets {
            if fetched >= MAX_INCLUDES || depth > MAX_DEPTH {
                unresolved.push(format!("{file}: too many or too deeply nested includes"));
                continue;
            }
            fetched += 1;
            match session.raw_file(&project, &file, &git_ref).await {
                Ok(text) => match ci_config::parse(&text) {
                    Ok(included) => {
                        pending.extend(
                            included
                                .includes()
                                .into_iter()
                                .map(|i| (project.clone(), git_ref.clone(), i, depth + 1)),
                        );
                        merged.push(included);
                    }
                    Err(e) => unresolved.push(format!("{file}: {e}")),
                },
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => unresolved.push(format!("{file}: {e}")),
            }
        }
    }
    for included in merged {
        config.merge_include(included);
    }
    Ok(LoadedConfig {
        config,
        source: ConfigSource::RawFiles,
        unresolved,
    })
}

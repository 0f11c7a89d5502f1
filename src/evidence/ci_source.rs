//! The CI configuration a pipeline ran with, as loaded: where it came from ([`ConfigSource`]),
//! what could not be read, and GitLab's merged YAML made readable. Fetching it from GitLab is
//! `recognise::ci_source`'s job.

use serde::Serialize;

use super::ci_config::CiConfig;

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    /// GitLab's CI lint: every include resolved.
    MergedYaml,
    /// The raw file and the includes the bot could fetch itself.
    RawFiles,
}

/// A loaded configuration and what could not be read.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: CiConfig,
    pub source: ConfigSource,
    /// Includes the bot could not resolve (remote, template, component, missing files), and
    /// why: jobs or templates defined there are unknown.
    pub unresolved: Vec<String>,
}

/// GitLab's merged YAML may carry Ruby symbol keys (`:job_name:`, `:script:`); plain keys are
/// what the reader understands.
pub fn normalise_merged_yaml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let (lead, rest) = line.split_at(indent);
        let (dash, rest) = match rest.strip_prefix("- ") {
            Some(r) => ("- ", r),
            None => ("", rest),
        };
        let fixed = rest.strip_prefix(':').and_then(|r| {
            let quoted = r.starts_with('"');
            let end = if quoted {
                r[1..].find('"').map(|i| i + 2)
            } else {
                r.find(':')
            }?;
            let after = &r[end..];
            let is_key = if quoted {
                after.starts_with(':')
            } else {
                after.len() == 1 || after[1..].starts_with(' ')
            };
            let name = &r[..end];
            (is_key && !name.is_empty() && !name.contains(' ') || (is_key && quoted))
                .then(|| format!("{name}{after}"))
        });
        out.push_str(lead);
        out.push_str(dash);
        out.push_str(fixed.as_deref().unwrap_or(rest));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ci_config;

    #[test]
    fn symbol_keys_of_merged_yaml_become_plain_keys() {
        let merged = "---\n:test_job:\n  :script: echo 1\n:deploy:\n  :script:\n  - 'curl -X POST https://x/api/v4/projects/1/trigger/pipeline'\n  :variables:\n    :TOKEN: \":not-a-key\"\n";
        let fixed = normalise_merged_yaml(merged);
        assert!(fixed.contains("\ntest_job:\n  script: echo 1\n"), "{fixed}");
        assert!(fixed.contains("    TOKEN: \":not-a-key\""), "{fixed}");
        let config = ci_config::parse(&fixed).unwrap();
        assert_eq!(
            config.job_names(),
            vec!["test_job".to_string(), "deploy".to_string()]
        );
        let job = config.job("deploy").unwrap().unwrap();
        assert_eq!(job.trigger_calls().len(), 1);
    }

    #[test]
    fn plain_yaml_passes_unchanged() {
        let text = "build:\n  script:\n    - echo \"a: b\"\n    - ':literal'\n";
        assert_eq!(normalise_merged_yaml(text), text);
    }
}

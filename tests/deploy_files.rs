//! The deployment files in `deploy/` stay valid: every YAML file parses, every
//! `TRIGGER_DOCTOR__*` variable they name is a real configuration key, the configuration each
//! of them produces loads, and the facts they promise (non-root user, probe paths, shutdown
//! time above the grace period, hardening) hold.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Parser};
use trigger_doctor::config::{Settings, ENV_PREFIX};

// Keys that may be read from a file named by `..._FILE`.
use trigger_doctor::config::SECRET_KEYS;

/// The generic form used in prose, not a real variable.
const PLACEHOLDER: &str = "TRIGGER_DOCTOR__SECTION__KEY";

/// PostgreSQL is checked by the store's own tests; here a `postgres://` store URL is swapped
/// for SQLite so the rest of each configuration can be loaded.
const SQLITE_STAND_IN: &str = "sqlite://trigger-doctor.db";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The tracked files of deploy/ (not the local `secrets/` and `.env` an operator creates).
fn deploy_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(&root().join("deploy"), &mut files);
    files.retain(|p| {
        !p.components().any(|c| c.as_os_str() == "secrets")
            && p.file_name().is_some_and(|n| n != ".env")
    });
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// A small YAML tree read from saphyr-parser events (anchors, aliases and `<<` merge keys
// included; every scalar kept as text).

#[derive(Clone, Debug)]
enum Yaml {
    Scalar(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a path of map keys; panics naming the path when it is missing.
    fn at(&self, path: &[&str]) -> &Yaml {
        path.iter().fold(self, |node, key| {
            node.get(key)
                .unwrap_or_else(|| panic!("no `{}` in the YAML", path.join(".")))
        })
    }

    fn str(&self) -> &str {
        match self {
            Yaml::Scalar(s) => s,
            other => panic!("expected a scalar, found {other:?}"),
        }
    }

    fn seq(&self) -> &[Yaml] {
        match self {
            Yaml::Seq(items) => items,
            other => panic!("expected a sequence, found {other:?}"),
        }
    }

    fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            other => panic!("expected a mapping, found {other:?}"),
        }
    }

    fn int(&self) -> u64 {
        self.str()
            .parse()
            .unwrap_or_else(|_| panic!("expected a whole number, found {:?}", self.str()))
    }
}

enum Frame {
    Seq(Vec<Yaml>, usize),
    Map(Vec<(String, Yaml)>, Option<String>, usize),
}

fn insert(entries: &mut Vec<(String, Yaml)>, key: String, value: Yaml) {
    if key == "<<" {
        // Merge key: the merged mapping's entries, unless the mapping sets them itself.
        for (k, v) in value.entries() {
            if !entries.iter().any(|(e, _)| e == k) {
                entries.push((k.clone(), v.clone()));
            }
        }
    } else if let Some(slot) = entries.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
    } else {
        entries.push((key, value));
    }
}

/// Every document of a YAML text; panics with the file name and position on a syntax error.
fn parse_yaml(text: &str, name: &str) -> Vec<Yaml> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Yaml> = HashMap::new();
    let mut root: Option<Yaml> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"));
        let (node, anchor) = match event {
            Event::Scalar(text, _, anchor, _) => (Yaml::Scalar(text.into_owned()), anchor),
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(Vec::new(), anchor));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(Vec::new(), None, anchor));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => (Yaml::Seq(items), anchor),
                Some(Frame::Map(entries, _, anchor)) => (Yaml::Map(entries), anchor),
                None => continue,
            },
            Event::Alias(id) => {
                let node = anchors.get(&id).cloned().unwrap_or_else(|| {
                    panic!("{name}: unknown alias at line {}", span.start.line())
                });
                (node, 0)
            }
            Event::DocumentEnd => {
                docs.push(root.take().unwrap_or(Yaml::Scalar(String::new())));
                continue;
            }
            _ => continue,
        };
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, key, _)) => match key.take() {
                None => match node {
                    Yaml::Scalar(k) => *key = Some(k),
                    other => panic!("{name}: a mapping key is not a scalar: {other:?}"),
                },
                Some(k) => insert(entries, k, node),
            },
        }
    }
    docs
}

fn yaml_file(rel: &str) -> Yaml {
    let mut docs = parse_yaml(&read(rel), rel);
    assert_eq!(docs.len(), 1, "{rel} should hold one document");
    docs.remove(0)
}

// ---------------------------------------------------------------------------------------------
// Configuration keys.

/// Every leaf key of config/default.toml, dotted (`notify.slack.routes`).
fn config_keys() -> BTreeSet<String> {
    fn walk(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(t, &key, out),
                _ => {
                    out.insert(key);
                }
            }
        }
    }
    let table: toml::Table = read("config/default.toml").parse().unwrap();
    let mut keys = BTreeSet::new();
    walk(&table, "", &mut keys);
    keys
}

/// `TRIGGER_DOCTOR__NOTIFY__SLACK__ROUTES_FILE` → (`notify.slack.routes`, true).
fn key_of(name: &str) -> (String, bool) {
    let rest = name.strip_prefix(ENV_PREFIX).unwrap().to_ascii_lowercase();
    if let Some(base) = rest.strip_suffix("_file") {
        let key = base.replace("__", ".");
        if SECRET_KEYS.contains(&key.as_str()) {
            return (key, true);
        }
    }
    (rest.replace("__", "."), false)
}

/// Every `TRIGGER_DOCTOR__...` name in a text.
fn variable_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(ENV_PREFIX) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

fn load(file: Option<&Path>, env: &[(String, String)], what: &str) -> Settings {
    let settings =
        Settings::load_from(file, env).unwrap_or_else(|e| panic!("{what}: {e} (env: {env:?})"));
    settings
        .require_webhook_auth()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    settings
}

/// Replaces a `postgres://` store URL with SQLite (see [`SQLITE_STAND_IN`]).
fn without_postgres(env: &mut [(String, String)]) {
    for (name, value) in env.iter_mut() {
        if name == "TRIGGER_DOCTOR__STORE__URL" && value.starts_with("postgres://") {
            *value = SQLITE_STAND_IN.to_string();
        }
    }
}

fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_yaml_file_parses() {
    let yaml: Vec<PathBuf> = deploy_files()
        .into_iter()
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    assert!(
        yaml.len() >= 6,
        "expected the compose file and the manifests"
    );
    for path in yaml {
        let name = path.display().to_string();
        let docs = parse_yaml(&std::fs::read_to_string(&path).unwrap(), &name);
        assert!(!docs.is_empty(), "{name} is empty");
        for doc in docs {
            assert!(matches!(doc, Yaml::Map(_)), "{name}: not a mapping");
        }
    }
}

#[test]
fn every_variable_named_in_deploy_is_a_configuration_key() {
    let keys = config_keys();
    let mut seen = 0;
    for path in deploy_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for name in variable_names(&text) {
            // The generic form, or the bare prefix as in "TRIGGER_DOCTOR__...", in prose.
            if name == PLACEHOLDER || name == ENV_PREFIX {
                continue;
            }
            let (key, _) = key_of(&name);
            assert!(
                keys.contains(&key),
                "{} names {name}, but config/default.toml has no key `{key}`",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen > 10, "found only {seen} variables in deploy/");
    // The secrets' _FILE forms exist only for secret keys.
    for key in SECRET_KEYS {
        assert!(keys.contains(*key), "{key} is no longer a key");
    }
}

#[test]
fn dockerfile_builds_locked_and_runs_unprivileged() {
    let text = read("deploy/Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "expected a multi-stage build");
    assert!(lines[stages[0]].starts_with("FROM rust:"));
    assert!(text.contains("cargo build --release --locked"));

    // The toolchain is at least the crate's minimum version.
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let minimum = manifest["package"]["rust-version"].as_str().unwrap();
    let pinned = lines
        .iter()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION=");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap()).collect() };
    assert!(
        version(pinned) >= version(minimum),
        "rust {pinned} < rust-version {minimum}"
    );
    // The placeholder build must declare every bench of Cargo.toml, or cargo refuses the manifest.
    let placeholder_line = lines
        .iter()
        .find(|l| l.contains("for bench in"))
        .expect("placeholder benches");
    for bench in manifest["bench"].as_array().unwrap() {
        let name = bench["name"].as_str().unwrap();
        assert!(
            placeholder_line.contains(name),
            "the Dockerfile's placeholder build lacks the bench {name}"
        );
    }

    // The runtime stage.
    let runtime = &lines[*stages.last().unwrap()..];
    let instruction = |word: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter_map(|l| l.strip_prefix(word))
            .map(str::trim)
            .collect()
    };
    let user = instruction("USER ");
    assert_eq!(user.len(), 1, "one USER in the runtime stage");
    let uid: u32 = user[0]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric UID");
    assert_ne!(uid, 0, "the runtime user must not be root");
    assert_eq!(instruction("EXPOSE "), ["8080"]);
    assert_eq!(
        instruction("ENTRYPOINT "),
        [r#"["/usr/local/bin/trigger-doctor"]"#]
    );
    assert_eq!(instruction("CMD "), [r#"["serve"]"#]);
    assert_eq!(instruction("VOLUME "), [r#"["/data"]"#]);
    assert!(
        runtime
            .iter()
            .any(|l| l.contains(&format!("--chown={uid}:")) && l.ends_with(" /data")),
        "/data must belong to the runtime user"
    );

    // Its environment gives a working configuration (with a webhook token added, as any
    // deployment must) whose store is inside the volume and whose port is the exposed one.
    let mut env: Vec<(String, String)> = instruction("ENV ")
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("ENV KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(
        env_value(&env, "TRIGGER_DOCTOR__STORE__URL"),
        Some("sqlite:///data/trigger-doctor.db")
    );
    env.push((
        "TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS".into(),
        "test-token".into(),
    ));
    let settings = load(None, &env, "Dockerfile");
    assert_eq!(settings.server.listen.port(), 8080);

    let ignore = read(".dockerignore");
    for entry in ["target", ".git", "deploy/secrets"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

/// Replaces `${NAME:-default}` by the default and any other `${...}` by `x`.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed ${") + start;
        let inner = &rest[start + 2..end];
        match inner.split_once(":-") {
            Some((_, default)) => out.push_str(default),
            None => out.push('x'),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn seconds(duration: &str) -> u64 {
    let (n, unit) = duration.split_at(duration.trim_end_matches(char::is_alphabetic).len());
    let n: u64 = n.parse().unwrap();
    match unit {
        "s" | "" => n,
        "m" => n * 60,
        other => panic!("unexpected unit {other:?} in {duration:?}"),
    }
}

#[test]
fn compose_runs_two_replicas_on_one_postgres() {
    let compose = yaml_file("deploy/compose.yaml");
    let services = compose.at(&["services"]);
    let postgres = services.get("postgres").expect("a postgres service");
    assert!(postgres.at(&["image"]).str().starts_with("postgres:"));
    let check: Vec<&str> = postgres
        .at(&["healthcheck", "test"])
        .seq()
        .iter()
        .map(Yaml::str)
        .collect();
    assert!(check.contains(&"pg_isready"), "healthcheck: {check:?}");
    assert!(postgres.at(&["volumes"]).seq()[0]
        .str()
        .ends_with(":/var/lib/postgresql/data"));

    let top_secrets = compose.at(&["secrets"]);
    let replicas: Vec<(&String, &Yaml)> = services
        .entries()
        .iter()
        .filter(|(name, _)| name.starts_with("trigger-doctor"))
        .map(|(n, s)| (n, s))
        .collect();
    let declared: u64 = replicas
        .iter()
        .map(|(_, s)| {
            s.get("deploy")
                .and_then(|d| d.get("replicas"))
                .map_or(1, Yaml::int)
        })
        .sum();
    assert!(declared >= 2, "expected two replicas, found {declared}");
    let mut host_ports = BTreeSet::new();
    for (name, service) in replicas {
        assert_eq!(
            service.at(&["build", "dockerfile"]).str(),
            "deploy/Dockerfile"
        );
        assert_eq!(
            service.at(&["depends_on", "postgres", "condition"]).str(),
            "service_healthy",
            "{name}"
        );
        for port in service.get("ports").map_or(&[][..], Yaml::seq) {
            let port = port.str();
            assert!(port.ends_with(":8080"), "{name} publishes {port}");
            assert!(
                host_ports.insert(port.to_string()),
                "{port} published twice"
            );
        }
        if service.get("read_only").map(Yaml::str) == Some("true") {
            assert!(
                service
                    .at(&["tmpfs"])
                    .seq()
                    .iter()
                    .any(|t| t.str().split(':').next() == Some("/tmp")),
                "{name}: a read-only container needs a writable /tmp for job logs"
            );
        }

        // Secrets: each _FILE points into /run/secrets at a secret the service mounts, whose
        // file is declared at the top level.
        let mounted: Vec<&str> = service
            .at(&["secrets"])
            .seq()
            .iter()
            .map(Yaml::str)
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut env = Vec::new();
        for (var, value) in service.at(&["environment"]).entries() {
            let mut value = interpolate(value.str());
            if key_of(var).1 {
                let secret = value
                    .strip_prefix("/run/secrets/")
                    .unwrap_or_else(|| panic!("{name}: {var}={value} is not in /run/secrets"));
                assert!(mounted.contains(&secret), "{name} does not mount {secret}");
                let file = top_secrets.at(&[secret, "file"]).str();
                assert!(file.starts_with("./secrets/"), "{secret}: {file}");
                let path = dir.path().join(secret);
                let content = if secret.contains("webhook_secret") {
                    "test-token\n"
                } else {
                    ""
                };
                std::fs::write(&path, content).unwrap();
                value = path.display().to_string();
            }
            env.push((var.clone(), value));
        }
        assert!(env_value(&env, "TRIGGER_DOCTOR__STORE__URL")
            .unwrap()
            .starts_with("postgres://"));
        without_postgres(&mut env);
        let settings = load(None, &env, name);
        let grace = settings.server.shutdown_grace.as_secs();
        let stop = seconds(service.at(&["stop_grace_period"]).str());
        assert!(
            stop > 2 * grace,
            "{name}: stop_grace_period {stop}s must exceed twice the {grace}s grace"
        );
    }
    assert!(
        host_ports.len() >= 2,
        "publish the replicas on different ports"
    );
}

#[test]
fn kubernetes_manifests_are_consistent() {
    let deployment = yaml_file("deploy/kubernetes/deployment.yaml");
    let service = yaml_file("deploy/kubernetes/service.yaml");
    let configmap = yaml_file("deploy/kubernetes/configmap.yaml");
    let secret = yaml_file("deploy/kubernetes/secret.example.yaml");

    assert_eq!(deployment.at(&["kind"]).str(), "Deployment");
    assert!(deployment.at(&["spec", "replicas"]).int() >= 2);
    let pod = deployment.at(&["spec", "template"]);
    let pod_spec = pod.at(&["spec"]);
    let pod_security = pod_spec.at(&["securityContext"]);
    assert_eq!(pod_security.at(&["runAsNonRoot"]).str(), "true");
    assert_ne!(pod_security.at(&["runAsUser"]).int(), 0);
    assert_eq!(
        pod_security.at(&["seccompProfile", "type"]).str(),
        "RuntimeDefault"
    );
    let containers = pod_spec.at(&["containers"]).seq();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let security = container.at(&["securityContext"]);
    assert_eq!(security.at(&["readOnlyRootFilesystem"]).str(), "true");
    assert_eq!(security.at(&["runAsNonRoot"]).str(), "true");
    assert_eq!(security.at(&["allowPrivilegeEscalation"]).str(), "false");
    let dropped: Vec<&str> = security
        .at(&["capabilities", "drop"])
        .seq()
        .iter()
        .map(Yaml::str)
        .collect();
    assert_eq!(dropped, ["ALL"]);
    for limit in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            container.at(&["resources", limit, resource]);
        }
    }

    // Probes: liveness on /healthz, readiness on /readyz, on the named port.
    let port = container
        .at(&["ports"])
        .seq()
        .iter()
        .find(|p| p.get("name").map(Yaml::str) == Some("http"))
        .expect("a port named http");
    assert_eq!(port.at(&["containerPort"]).int(), 8080);
    assert_eq!(
        container.at(&["livenessProbe", "httpGet", "path"]).str(),
        "/healthz"
    );
    assert_eq!(
        container.at(&["readinessProbe", "httpGet", "path"]).str(),
        "/readyz"
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container.at(&[probe, "httpGet", "port"]).str(), "http");
    }

    // Volumes: the secrets, and a writable /tmp for job logs under a read-only root.
    let volumes = pod_spec.at(&["volumes"]).seq();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v.at(&["name"]).str() == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let mounts = container.at(&["volumeMounts"]).seq();
    let tmp = mounts
        .iter()
        .find(|m| m.at(&["mountPath"]).str() == "/tmp")
        .expect("/tmp mounted");
    volume(tmp.at(&["name"]).str()).at(&["emptyDir"]);
    let secret_name = secret.at(&["metadata", "name"]).str();
    let secret_mount = mounts
        .iter()
        .find(|m| volume(m.at(&["name"]).str()).get("secret").is_some())
        .expect("the Secret mounted");
    let secret_dir = secret_mount.at(&["mountPath"]).str();
    assert_eq!(
        volume(secret_mount.at(&["name"]).str())
            .at(&["secret", "secretName"])
            .str(),
        secret_name
    );

    // The environment: the ConfigMap, then the container's own variables, with the example
    // Secret's values standing in for the real ones.
    assert_eq!(
        container.at(&["envFrom"]).seq()[0]
            .at(&["configMapRef", "name"])
            .str(),
        configmap.at(&["metadata", "name"]).str()
    );
    let data = secret.at(&["stringData"]);
    for (key, value) in data.entries() {
        let value = value.str();
        assert!(
            value.is_empty() || value.contains("REPLACE-ME"),
            "secret.example.yaml: {key} must be an obvious placeholder"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = configmap
        .at(&["data"])
        .entries()
        .iter()
        .map(|(k, v)| (k.clone(), v.str().to_string()))
        .collect();
    for var in container.at(&["env"]).seq() {
        let name = var.at(&["name"]).str().to_string();
        let value = if let Some(value) = var.get("value") {
            let value = value.str();
            if key_of(&name).1 {
                let file = value
                    .strip_prefix(secret_dir)
                    .and_then(|f| f.strip_prefix('/'))
                    .unwrap_or_else(|| panic!("{name}={value} is not in {secret_dir}"));
                let path = dir.path().join(file);
                std::fs::write(&path, data.at(&[file]).str()).unwrap();
                path.display().to_string()
            } else {
                value.to_string()
            }
        } else {
            let reference = var.at(&["valueFrom", "secretKeyRef"]);
            assert_eq!(reference.at(&["name"]).str(), secret_name);
            data.at(&[reference.at(&["key"]).str()]).str().to_string()
        };
        env.push((name, value));
    }
    assert!(env_value(&env, "TRIGGER_DOCTOR__STORE__URL")
        .unwrap()
        .starts_with("postgres://"));
    without_postgres(&mut env);
    let settings = load(None, &env, "deployment.yaml");
    assert_eq!(settings.server.listen.port(), 8080);

    // Stopping: preStop, then the HTTP drain and the worker drain (each up to the grace).
    let grace = settings.server.shutdown_grace.as_secs();
    let pre_stop = container
        .get("lifecycle")
        .and_then(|l| l.get("preStop"))
        .and_then(|p| p.get("sleep"))
        .map_or(0, |s| s.at(&["seconds"]).int());
    let termination = pod_spec.at(&["terminationGracePeriodSeconds"]).int();
    assert!(
        termination > pre_stop + 2 * grace,
        "terminationGracePeriodSeconds {termination} must exceed {pre_stop} + 2 x {grace}"
    );

    // The Service reaches the pods' http port.
    let labels = pod.at(&["metadata", "labels"]);
    for (k, v) in service.at(&["spec", "selector"]).entries() {
        assert_eq!(labels.at(&[k]).str(), v.str(), "selector {k}");
    }
    let ports = service.at(&["spec", "ports"]).seq();
    assert_eq!(ports[0].at(&["port"]).int(), 80);
    assert_eq!(ports[0].at(&["targetPort"]).str(), "http");
    assert_eq!(
        service
            .get("spec")
            .and_then(|s| s.get("type"))
            .map_or("ClusterIP", Yaml::str),
        "ClusterIP"
    );

    // The kustomization lists existing files, and not the example Secret.
    let kustomization = yaml_file("deploy/kubernetes/kustomization.yaml");
    for resource in kustomization.at(&["resources"]).seq() {
        let file = resource.str();
        assert_ne!(file, "secret.example.yaml");
        assert!(
            root().join("deploy/kubernetes").join(file).is_file(),
            "{file}"
        );
    }
}

#[test]
fn systemd_unit_is_hardened_and_its_configuration_loads() {
    let unit = read("deploy/systemd/trigger-doctor.service");
    let mut section = String::new();
    let mut service: Vec<(String, String)> = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[Service]" && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                service.push((k.to_string(), v.to_string()));
            }
        }
    }
    let values = |key: &str| -> Vec<&str> {
        service
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        let v = values(key);
        assert_eq!(v.len(), 1, "expected one {key}=, found {v:?}");
        v[0]
    };
    for (key, value) in [
        ("Type", "simple"),
        ("NoNewPrivileges", "yes"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "trigger-doctor"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(key), value, "{key}=");
    }
    assert!(values("SystemCallFilter").contains(&"@system-service"));

    let exec = one("ExecStart");
    let config = exec
        .strip_prefix("/usr/local/bin/trigger-doctor serve --config ")
        .expect("ExecStart runs serve with --config");
    assert_eq!(config, "/etc/trigger-doctor/config.toml");

    // The environment, with %d (the credentials directory) in a temporary directory and each
    // credential written there.
    let credentials: Vec<(&str, &str)> = values("LoadCredential")
        .into_iter()
        .map(|v| v.split_once(':').expect("LoadCredential=NAME:PATH"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut env = Vec::new();
    for assignment in values("Environment") {
        let (name, value) = assignment.split_once('=').expect("Environment=NAME=VALUE");
        let mut value = value.to_string();
        if key_of(name).1 {
            let credential = value
                .strip_prefix("%d/")
                .unwrap_or_else(|| panic!("{name} should name a credential (%d/...)"));
            let (_, source) = credentials
                .iter()
                .find(|(n, _)| *n == credential)
                .unwrap_or_else(|| {
                    panic!("{name} names {credential}, which no LoadCredential loads")
                });
            assert!(source.starts_with("/etc/trigger-doctor/credentials/"));
            let path = dir.path().join(credential);
            std::fs::write(&path, "test-token\n").unwrap();
            value = path.display().to_string();
        }
        env.push((name.to_string(), value));
    }
    let store = env_value(&env, "TRIGGER_DOCTOR__STORE__URL").expect("a store URL");
    assert!(
        store.starts_with("sqlite:///var/lib/trigger-doctor/"),
        "the SQLite file belongs in the StateDirectory: {store}"
    );
    let example = root().join("deploy/systemd/config.toml");
    let settings = load(Some(&example), &env, "the systemd unit");
    assert_eq!(settings.webhook.secret_tokens.len(), 1);
    assert!(!settings.gitlab.token.is_empty());

    let grace = settings.server.shutdown_grace.as_secs();
    let stop = seconds(one("TimeoutStopSec"));
    assert!(
        stop > 2 * grace,
        "TimeoutStopSec={stop} must exceed twice the {grace}s grace"
    );
}

//! What the manifest tests stand on: the rendered kustomizations,
//! kubernetes-validate, and reading the rendered objects as Kubernetes would (label selectors,
//! Service ports, Ingress paths).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The Kubernetes version whose schemas the manifests must pass.
pub const KUBERNETES_VERSION: &str = "1.32.0";

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
}

/// `<repo>/DIR` rendered as `kubectl kustomize` would (by
/// [`super::kustomize`]): the objects.
pub fn kustomize(dir: &str) -> Vec<Value> {
    super::kustomize::render(&repo_root().join(dir))
}

/// The objects as one YAML stream (of JSON documents), for
/// kubernetes-validate.
pub fn to_yaml(objects: &[Value]) -> String {
    super::kustomize::to_yaml(objects)
}

/// The Python that has kubernetes-validate: the project's virtualenv
/// (`.venv`, which scripts/test.sh makes), else `python3` on PATH.
fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// `python3 -m kubernetes_validate --strict -k VERSION -` over `yaml`: its
/// success, and what it printed.
pub fn kubernetes_validate(yaml: &str) -> (bool, String) {
    let mut child = Command::new(python())
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "-k",
            KUBERNETES_VERSION,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): the manifest tests need python3 with kubernetes-validate"
            )
        });
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = yaml.to_owned();
    // Written from another thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child
        .wait_with_output()
        .expect("wait for kubernetes-validate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named kubernetes_validate"),
        "kubernetes-validate is not installed: `python3 -m venv .venv && .venv/bin/pip install kubernetes-validate` (scripts/test.sh does)"
    );
    writer.join().expect("writer thread").unwrap_or_else(|e| {
        panic!("kubernetes-validate did not read the manifests ({e}):\n{stderr}")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    (out.status.success(), format!("{stdout}{stderr}"))
}

/// The rendered base (`k8s`), once per test run.
pub fn base() -> &'static Manifests {
    static BASE: OnceLock<Manifests> = OnceLock::new();
    BASE.get_or_init(|| Manifests(kustomize("k8s")))
}

/// Rendered Kubernetes objects.
pub struct Manifests(Vec<Value>);

impl Manifests {
    pub fn new(objects: Vec<Value>) -> Manifests {
        Manifests(objects)
    }

    pub fn all(&self) -> impl Iterator<Item = &Value> {
        self.0.iter()
    }

    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
        let kind = kind.to_owned();
        self.0.iter().filter(move |o| o["kind"] == *kind)
    }

    pub fn get(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("the rendered base has no {kind} {name}"))
    }

    /// Everything that runs pods.
    pub fn workloads(&self) -> impl Iterator<Item = &Value> {
        self.of_kind("Deployment")
            .chain(self.of_kind("StatefulSet"))
    }

    /// The one workload whose pods the Service `name` selects, and the
    /// container port that the Service's `port` (a name or number) reaches.
    pub fn service_target(&self, name: &str, port: &Value) -> (&Value, u64) {
        let service = self.get("Service", name);
        let selector = json!({ "matchLabels": service["spec"]["selector"] });
        let selected: Vec<&Value> = self
            .workloads()
            .filter(|w| selects(&selector, pod_labels(w)))
            .collect();
        assert_eq!(
            selected.len(),
            1,
            "Service {name} must select exactly one workload's pods"
        );
        let entry = array(&service["spec"]["ports"])
            .iter()
            .find(|p| p["name"] == *port || p["port"] == *port)
            .unwrap_or_else(|| panic!("Service {name} has no port {port}"));
        let target = match &entry["targetPort"] {
            Value::Null => &entry["port"],
            target => target,
        };
        let container_port = container_port(selected[0], target)
            .unwrap_or_else(|| panic!("Service {name}'s targetPort {target} is no container port"));
        (selected[0], container_port)
    }
}

pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("?")
}

/// The items of a list field; none when it is absent.
pub fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

pub fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

pub fn pod_labels(workload: &Value) -> &Value {
    &workload["spec"]["template"]["metadata"]["labels"]
}

/// Init containers and containers.
pub fn containers(workload: &Value) -> impl Iterator<Item = &Value> {
    let spec = pod_spec(workload);
    array(&spec["initContainers"])
        .iter()
        .chain(array(&spec["containers"]))
}

pub fn container<'a>(workload: &'a Value, container: &str) -> &'a Value {
    containers(workload)
        .find(|c| c["name"] == container)
        .unwrap_or_else(|| panic!("{} has no container {container}", name(workload)))
}

/// The number of a container port given by name or number.
pub fn container_port(workload: &Value, port: &Value) -> Option<u64> {
    containers(workload)
        .flat_map(|c| array(&c["ports"]))
        .find(|p| p["name"] == *port || p["containerPort"] == *port)
        .and_then(|p| p["containerPort"].as_u64())
}

pub fn env<'a>(container: &'a Value, var: &str) -> Option<&'a Value> {
    array(&container["env"]).iter().find(|e| e["name"] == var)
}

/// The literal value of `var`, which must be set.
pub fn env_literal<'a>(container: &'a Value, var: &str) -> &'a str {
    env(container, var)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| {
            panic!(
                "container {} must set {var} to a literal value",
                container["name"].as_str().unwrap_or("?")
            )
        })
}

pub fn env_number(container: &Value, var: &str) -> u64 {
    let value = env_literal(container, var);
    value.parse().unwrap_or_else(|_| {
        panic!(
            "{var}={value:?} in container {} is not a number",
            container["name"].as_str().unwrap_or("?")
        )
    })
}

/// The port of an `ADDRESS:PORT` such as LISTEN_ADDR.
pub fn port_of(addr: &str) -> u64 {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{addr:?} is not ADDRESS:PORT"))
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects
/// `labels`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| labels[key] == *value);
    let by_expressions = array(&selector["matchExpressions"]).iter().all(|e| {
        let value = &labels[e["key"].as_str().unwrap_or_default()];
        let listed = array(&e["values"]).contains(value);
        match e["operator"].as_str() {
            Some("In") => listed,
            Some("NotIn") => !listed,
            Some("Exists") => !value.is_null(),
            Some("DoesNotExist") => value.is_null(),
            other => panic!("unknown selector operator {other:?}"),
        }
    });
    by_labels && by_expressions
}

/// The backend Service (`{name, port}`) that these Ingresses send `path`
/// to: an Exact path first, then the longest Prefix, matched by whole path
/// elements (the Ingress API's rules of precedence).
pub fn route<'a>(ingresses: &[&'a Value], path: &str) -> Option<&'a Value> {
    let mut best: Option<(usize, &Value)> = None;
    let paths = ingresses
        .iter()
        .flat_map(|i| array(&i["spec"]["rules"]))
        .flat_map(|rule| array(&rule["http"]["paths"]));
    for p in paths {
        let rule_path = p["path"].as_str().unwrap_or_default();
        let prefix = rule_path.trim_end_matches('/');
        let score = match p["pathType"].as_str() {
            Some("Exact") if rule_path == path => usize::MAX,
            Some("Prefix") if path == prefix || path.starts_with(&format!("{prefix}/")) => {
                prefix.len()
            }
            _ => continue,
        };
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, &p["backend"]["service"]));
        }
    }
    best.map(|(_, service)| service)
}

#[test]
fn selectors_and_routes_are_read_as_kubernetes_does() {
    let labels = json!({"app": "gateway", "tier": "web"});
    assert!(selects(
        &json!({"matchLabels": {"app": "gateway"}}),
        &labels
    ));
    assert!(!selects(&json!({"matchLabels": {"app": "redis"}}), &labels));
    let expression = |operator: &str| json!({"matchExpressions": [{"key": "app", "operator": operator, "values": ["gateway", "canvas-api"]}]});
    assert!(selects(&expression("In"), &labels));
    assert!(!selects(&expression("NotIn"), &labels));
    assert!(!selects(&expression("In"), &json!({"app": "redis"})));

    let ingress = json!({"spec": {"rules": [{"http": {"paths": [
        {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api"}}},
        {"path": "/api/events", "pathType": "Exact", "backend": {"service": {"name": "sse"}}},
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web"}}},
    ]}}]}});
    let to = |path| route(&[&ingress], path).map(|s| s["name"].as_str().unwrap());
    assert_eq!(to("/api/events"), Some("sse"));
    assert_eq!(to("/api/events/x"), Some("api"));
    assert_eq!(to("/api"), Some("api"));
    assert_eq!(to("/apix"), Some("web"));
    assert_eq!(to("/ws"), Some("web"));
}

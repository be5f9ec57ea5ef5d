//! Renders a kustomization the way `kubectl kustomize` does, for exactly
//! the fields `k8s/` uses, so the manifest tests need no kubectl (nor the
//! kustomize Go module, which cannot be installed here). A field, a patch
//! operation or an option outside that subset fails the render, naming it:
//! nothing is silently left out.
//!
//! Supported: `resources` (YAML files and directories with their own
//! kustomization), `namespace`, `labels` (`pairs`, `includeSelectors`,
//! `includeTemplates`), `images` (`name`, `newName`, `newTag`),
//! `replicas`, `secretGenerator` (`literals`; the name gets kustomize's
//! content hash and every reference follows it) and `patches` (a file or
//! an inline patch: a strategic-merge patch, or a JSON 6902 list of `add`,
//! `replace` and `remove` with a `target`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The rendered objects of the kustomization in `dir`, in the order
/// kustomize prints them (by kind, then namespace and name).
pub fn render(dir: &Path) -> Vec<Value> {
    let mut objects = build(dir);
    objects.sort_by_cached_key(|o| {
        let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (
            kind_order(o["kind"].as_str().unwrap_or_default()),
            field(&o["kind"]),
            field(&o["metadata"]["namespace"]),
            field(&o["metadata"]["name"]),
        )
    });
    objects
}

/// The objects as one multi-document YAML stream. Each document is written
/// as JSON (which is YAML): every string is quoted, so a YAML 1.1 reader
/// (PyYAML, in kubernetes-validate) cannot take `yes` or `off` for a bool.
pub fn to_yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| format!("{}\n", serde_json::to_string_pretty(o).expect("JSON")))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Every non-empty document of a multi-document YAML text.
pub fn parse_documents(yaml: &str, origin: &Path) -> Vec<Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|doc| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", origin.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The fields of a Kustomization this renderer implements.
const SUPPORTED: &[&str] = &[
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "replicas",
    "secretGenerator",
    "patches",
];

fn build(dir: &Path) -> Vec<Value> {
    let file = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    let k: Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", file.display()));
    let fields = k
        .as_object()
        .unwrap_or_else(|| panic!("{} is not a mapping", file.display()));
    for field in fields.keys() {
        assert!(
            SUPPORTED.contains(&field.as_str()),
            "{}: the kustomization field `{field}` is not supported by tests/it/k8s/kustomize.rs \
             (it renders {SUPPORTED:?}); implement it there",
            file.display()
        );
    }
    assert_eq!(
        k["kind"],
        "Kustomization",
        "{}: kind must be Kustomization",
        file.display()
    );
    let here = |field: &str| format!("{}: {field}", file.display());

    let mut objects = Vec::new();
    for resource in items(&k["resources"]) {
        let path = dir.join(
            resource
                .as_str()
                .unwrap_or_else(|| panic!("{}: a resource must be a path", here("resources"))),
        );
        if path.is_dir() {
            objects.extend(build(&path));
        } else {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            objects.extend(parse_documents(&text, &path));
        }
    }
    let mut renamed = Vec::new();
    for generator in items(&k["secretGenerator"]) {
        let (secret, original) = generate_secret(generator, &here("secretGenerator"));
        renamed.push((original, secret["metadata"]["name"].clone()));
        objects.push(secret);
    }
    for patch in items(&k["patches"]) {
        apply_patch(&mut objects, patch, dir, &here("patches"));
    }
    if let Some(namespace) = k.get("namespace") {
        let namespace = namespace
            .as_str()
            .unwrap_or_else(|| panic!("{} must be a string", here("namespace")));
        for o in objects
            .iter_mut()
            .filter(|o| !is_cluster_scoped(&o["kind"]))
        {
            o["metadata"]["namespace"] = json!(namespace);
        }
    }
    for entry in items(&k["labels"]) {
        apply_labels(&mut objects, entry, &here("labels"));
    }
    for image in items(&k["images"]) {
        apply_image(&mut objects, image, &here("images"));
    }
    for replicas in items(&k["replicas"]) {
        apply_replicas(&mut objects, replicas, &here("replicas"));
    }
    for (original, name) in renamed {
        for o in objects.iter_mut().filter(|o| o["kind"] != "Secret") {
            rename_secret_references(o, &original, &name);
        }
    }
    objects
}

/// The items of a list field; none when it is absent.
fn items(value: &Value) -> &[Value] {
    match value {
        Value::Null => &[],
        Value::Array(items) => items,
        other => panic!("expected a list, found {other}"),
    }
}

/// Panics unless `entry` is a mapping whose keys are all in `allowed`.
fn check_keys(entry: &Value, allowed: &[&str], at: &str) {
    let map = entry
        .as_object()
        .unwrap_or_else(|| panic!("{at}: each entry must be a mapping"));
    for key in map.keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{at}: `{key}` is not supported by tests/it/k8s/kustomize.rs (only {allowed:?})"
        );
    }
}

fn required_str<'a>(entry: &'a Value, key: &str, at: &str) -> &'a str {
    entry[key]
        .as_str()
        .unwrap_or_else(|| panic!("{at}: `{key}` is required and must be a string"))
}

/// Kinds without a namespace (among those a kustomization may hold).
fn is_cluster_scoped(kind: &Value) -> bool {
    [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
    .iter()
    .any(|k| kind == k)
}

/// kustomize's legacy output order: what others depend on first, then by
/// kind as listed, then everything else.
fn kind_order(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "Namespace",
        "ResourceQuota",
        "StorageClass",
        "CustomResourceDefinition",
        "ServiceAccount",
        "PodSecurityPolicy",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Endpoints",
        "Service",
        "LimitRange",
        "PriorityClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "CronJob",
        "PodDisruptionBudget",
    ];
    const LAST: &[&str] = &[
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    if let Some(i) = ORDER.iter().position(|k| *k == kind) {
        i
    } else if let Some(i) = LAST.iter().position(|k| *k == kind) {
        ORDER.len() + 1 + i
    } else {
        ORDER.len()
    }
}

/// A `secretGenerator` entry: the Secret, named `<name>-<content hash>` as
/// kustomize names it, and the name it was given.
fn generate_secret(entry: &Value, at: &str) -> (Value, String) {
    check_keys(entry, &["name", "literals", "type"], at);
    let name = required_str(entry, "name", at);
    let kind = entry["type"].as_str().unwrap_or("Opaque");
    let mut data = Map::new();
    for literal in items(&entry["literals"]) {
        let (key, value) = literal
            .as_str()
            .and_then(|l| l.split_once('='))
            .unwrap_or_else(|| panic!("{at}: a literal must be KEY=VALUE"));
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        data.insert(key.to_owned(), json!(encoded));
    }
    let hash = content_hash(kind, &data);
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{name}-{hash}")},
        "type": kind,
        "data": data,
    });
    (secret, name.to_owned())
}

/// kustomize's name suffix for a generated Secret: the first ten hex
/// digits of the SHA-256 of `{"data":…,"kind":"Secret","name":"","type":…}`
/// (keys sorted, as Go marshals a map), with 0, 1, 3, a and e swapped for
/// letters so that it never reads as a number or a word. The name is
/// empty: kustomize looks it up as one field called `metadata/name`, finds
/// none, and hashes "" (checked against kubectl 1.32's kustomize 5.5).
fn content_hash(kind: &str, data: &Map<String, Value>) -> String {
    let mut sorted: Vec<(&String, &Value)> = data.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let data: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}:{}", json!(k), v))
        .collect();
    let encoded = format!(
        "{{\"data\":{{{}}},\"kind\":\"Secret\",\"name\":\"\",\"type\":{}}}",
        data.join(","),
        json!(kind)
    );
    let digest = Sha256::digest(encoded.as_bytes());
    digest
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(10)
        .map(|nibble| match nibble {
            0 => 'g',
            1 => 'h',
            3 => 'k',
            0xa => 'm',
            0xe => 't',
            n => char::from_digit(u32::from(n), 16).expect("a nibble"),
        })
        .collect()
}

/// Rewrites every reference to the Secret `from` (env, envFrom, volumes,
/// image pull secrets, Ingress TLS) to `to`.
fn rename_secret_references(value: &mut Value, from: &str, to: &Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match key.as_str() {
                    "secretKeyRef" | "secretRef" | "secret" => {
                        rename_field(child, "name", from, to);
                        rename_field(child, "secretName", from, to);
                    }
                    "secretName" if child == from => *child = to.clone(),
                    "imagePullSecrets" => {
                        for entry in child.as_array_mut().into_iter().flatten() {
                            rename_field(entry, "name", from, to);
                        }
                    }
                    _ => {}
                }
                rename_secret_references(child, from, to);
            }
        }
        Value::Array(list) => {
            for child in list {
                rename_secret_references(child, from, to);
            }
        }
        _ => {}
    }
}

fn rename_field(object: &mut Value, field: &str, from: &str, to: &Value) {
    if let Some(value) = object.get_mut(field)
        && value == from
    {
        *value = to.clone();
    }
}

/// Where `labels` go (kustomize's commonLabels field specs): a kind (None:
/// every kind), a path (lists are walked into), and whether the field is
/// created when missing.
const SELECTOR_FIELDS: &[(Option<&str>, &str, bool)] = &[
    (Some("Service"), "spec/selector", true),
    (Some("ReplicationController"), "spec/selector", true),
    (Some("Deployment"), "spec/selector/matchLabels", true),
    (Some("ReplicaSet"), "spec/selector/matchLabels", true),
    (Some("DaemonSet"), "spec/selector/matchLabels", true),
    (Some("StatefulSet"), "spec/selector/matchLabels", true),
    (Some("Job"), "spec/selector/matchLabels", false),
    (
        Some("CronJob"),
        "spec/jobTemplate/spec/selector/matchLabels",
        false,
    ),
    (
        Some("PodDisruptionBudget"),
        "spec/selector/matchLabels",
        false,
    ),
    (Some("NetworkPolicy"), "spec/podSelector/matchLabels", false),
    (
        Some("NetworkPolicy"),
        "spec/ingress/from/podSelector/matchLabels",
        false,
    ),
    (
        Some("NetworkPolicy"),
        "spec/egress/to/podSelector/matchLabels",
        false,
    ),
];

/// The pod templates' label fields, by kind.
const TEMPLATE_FIELDS: &[(Option<&str>, &str, bool)] = &[
    (
        Some("ReplicationController"),
        "spec/template/metadata/labels",
        true,
    ),
    (Some("Deployment"), "spec/template/metadata/labels", true),
    (Some("ReplicaSet"), "spec/template/metadata/labels", true),
    (Some("DaemonSet"), "spec/template/metadata/labels", true),
    (Some("StatefulSet"), "spec/template/metadata/labels", true),
    (
        Some("StatefulSet"),
        "spec/volumeClaimTemplates/metadata/labels",
        true,
    ),
    (Some("Job"), "spec/template/metadata/labels", true),
    (Some("CronJob"), "spec/jobTemplate/metadata/labels", true),
    (
        Some("CronJob"),
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

/// Label selectors inside pod specs (affinity terms, topology spread):
/// kustomize adds the labels where such a selector already names labels.
const POD_SELECTOR_FIELDS: &[&str] = &[
    "affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "topologySpreadConstraints/labelSelector/matchLabels",
];

fn apply_labels(objects: &mut [Value], entry: &Value, at: &str) {
    check_keys(
        entry,
        &["pairs", "includeSelectors", "includeTemplates"],
        at,
    );
    let pairs = entry["pairs"]
        .as_object()
        .unwrap_or_else(|| panic!("{at}: `pairs` must be a mapping"));
    let selectors = entry["includeSelectors"].as_bool().unwrap_or(false);
    let templates = selectors || entry["includeTemplates"].as_bool().unwrap_or(false);
    for o in objects.iter_mut() {
        let kind = o["kind"].as_str().unwrap_or_default().to_owned();
        let mut fields: Vec<(String, bool)> = vec![("metadata/labels".to_owned(), true)];
        let of_kind = |specs: &[(Option<&str>, &str, bool)]| {
            specs
                .iter()
                .filter(|(k, _, _)| k.is_none_or(|k| k == kind))
                .map(|(_, path, create)| ((*path).to_owned(), *create))
                .collect::<Vec<_>>()
        };
        if templates {
            fields.extend(of_kind(TEMPLATE_FIELDS));
        }
        if selectors {
            fields.extend(of_kind(SELECTOR_FIELDS));
            if ["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"].contains(&kind.as_str()) {
                fields.extend(
                    POD_SELECTOR_FIELDS
                        .iter()
                        .map(|p| (format!("spec/template/spec/{p}"), false)),
                );
            }
        }
        for (path, create) in fields {
            let segments: Vec<&str> = path.split('/').collect();
            walk_to(o, &segments, create, &mut |labels| {
                let labels = labels
                    .as_object_mut()
                    .unwrap_or_else(|| panic!("{at}: {path} of a {kind} is not a mapping"));
                for (key, value) in pairs {
                    labels.insert(key.clone(), value.clone());
                }
            });
        }
    }
}

/// Calls `f` on the value at `path` under `value`, walking into every item
/// of a list on the way; creates missing mappings when `create`, else
/// skips paths that are absent.
fn walk_to(value: &mut Value, path: &[&str], create: bool, f: &mut dyn FnMut(&mut Value)) {
    match value {
        Value::Array(list) => {
            for item in list {
                walk_to(item, path, create, f);
            }
        }
        Value::Object(map) => match path.split_first() {
            None => f(value),
            Some((first, rest)) => {
                if !map.contains_key(*first) || map[*first].is_null() {
                    if !create {
                        return;
                    }
                    map.insert((*first).to_owned(), json!({}));
                }
                walk_to(map.get_mut(*first).expect("present"), rest, create, f);
            }
        },
        _ if path.is_empty() => f(value),
        _ => {}
    }
}

fn apply_image(objects: &mut [Value], entry: &Value, at: &str) {
    check_keys(entry, &["name", "newName", "newTag"], at);
    let name = required_str(entry, "name", at);
    for o in objects.iter_mut() {
        for path in [
            "spec/template/spec/containers/image",
            "spec/template/spec/initContainers/image",
            "spec/jobTemplate/spec/template/spec/containers/image",
            "spec/jobTemplate/spec/template/spec/initContainers/image",
        ] {
            let segments: Vec<&str> = path.split('/').collect();
            walk_to(o, &segments, false, &mut |image| {
                let Some(current) = image.as_str() else {
                    return;
                };
                assert!(
                    !current.contains('@'),
                    "{at}: image digests are not supported: {current}"
                );
                // A tag follows the last `:` after the last `/` (a registry
                // may carry a port).
                let (image_name, tag) = match current.rsplit_once(':') {
                    Some((n, t)) if !t.contains('/') => (n, Some(t)),
                    _ => (current, None),
                };
                if image_name != name {
                    return;
                }
                let new_name = entry["newName"].as_str().unwrap_or(image_name);
                let new_tag = entry["newTag"].as_str().or(tag);
                *image = json!(match new_tag {
                    Some(tag) => format!("{new_name}:{tag}"),
                    None => new_name.to_owned(),
                });
            });
        }
    }
}

fn apply_replicas(objects: &mut [Value], entry: &Value, at: &str) {
    check_keys(entry, &["name", "count"], at);
    let name = required_str(entry, "name", at);
    let count = entry["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("{at}: `count` must be a number"));
    let mut found = false;
    for o in objects.iter_mut().filter(|o| o["metadata"]["name"] == name) {
        if [
            "Deployment",
            "StatefulSet",
            "ReplicaSet",
            "ReplicationController",
        ]
        .iter()
        .any(|k| o["kind"] == *k)
        {
            o["spec"]["replicas"] = json!(count);
            found = true;
        }
    }
    assert!(found, "{at}: no workload named {name}");
}

fn apply_patch(objects: &mut [Value], entry: &Value, dir: &Path, at: &str) {
    check_keys(entry, &["path", "patch", "target"], at);
    let (text, origin): (String, PathBuf) = match (&entry["path"], &entry["patch"]) {
        (Value::String(path), Value::Null) => {
            let file = dir.join(path);
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            (text, file)
        }
        (Value::Null, Value::String(patch)) => (patch.clone(), PathBuf::from(at)),
        _ => panic!("{at}: a patch needs exactly one of `path` and `patch`"),
    };
    let target = &entry["target"];
    if !target.is_null() {
        check_keys(target, &["kind", "name"], &format!("{at}: target"));
    }
    let targeted = |o: &Value| {
        ["kind", "name"].iter().all(|key| {
            let wanted = &target[*key];
            let actual = if *key == "kind" {
                &o["kind"]
            } else {
                &o["metadata"]["name"]
            };
            wanted.is_null() || wanted == actual
        })
    };
    for document in parse_documents(&text, &origin) {
        match document {
            Value::Array(operations) => {
                assert!(!target.is_null(), "{at}: a JSON 6902 patch needs a target");
                let mut found = false;
                for o in objects.iter_mut().filter(|o| targeted(o)) {
                    found = true;
                    for op in &operations {
                        json_patch(o, op, at);
                    }
                }
                assert!(found, "{at}: no object matches the target {target}");
            }
            Value::Object(_) => {
                let kind = document["kind"].clone();
                let name = document["metadata"]["name"].clone();
                let mut found = false;
                for o in objects.iter_mut().filter(|o| {
                    (target.is_null() || targeted(o))
                        && (kind.is_null() || o["kind"] == kind)
                        && (name.is_null() || o["metadata"]["name"] == name)
                }) {
                    found = true;
                    merge(o, &document, "", at);
                }
                assert!(found, "{at}: no object matches the patch for {kind} {name}");
            }
            other => panic!("{at}: a patch must be a mapping or a list, not {other}"),
        }
    }
}

/// The key by which a strategic-merge patch merges the items of a list
/// field (the Kubernetes API's `patchMergeKey`s for pod specs); other
/// lists are replaced whole.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        _ => None,
    }
}

/// A strategic-merge patch of `target` by `patch`: mappings merge, `null`
/// deletes, lists with a merge key merge item by item.
fn merge(target: &mut Value, patch: &Value, field: &str, at: &str) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                assert!(
                    !key.starts_with('$'),
                    "{at}: the directive `{key}` is not supported by tests/it/k8s/kustomize.rs"
                );
                if value.is_null() {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    merge(existing, value, key, at);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (Value::Array(target), Value::Array(patch)) if merge_key(field).is_some() => {
            let key = merge_key(field).expect("checked");
            for item in patch {
                let id = &item[key];
                assert!(
                    !id.is_null(),
                    "{at}: an item of `{field}` in a patch needs its `{key}`"
                );
                match target.iter_mut().find(|t| t[key] == *id) {
                    Some(existing) => merge(existing, item, "", at),
                    None => target.push(item.clone()),
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// One JSON 6902 operation (`add`, `replace`, `remove`) on `object`.
fn json_patch(object: &mut Value, op: &Value, at: &str) {
    check_keys(op, &["op", "path", "value"], at);
    let kind = required_str(op, "op", at);
    let path = required_str(op, "path", at);
    let tokens: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or_else(|| panic!("{at}: the path {path:?} must start with /"))
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = tokens.split_last().expect("split yields one token");
    let name = object_name(object);
    let mut parent = &mut *object;
    for token in parents {
        parent = match parent {
            Value::Object(map) => map.get_mut(token),
            Value::Array(list) => token.parse::<usize>().ok().and_then(|i| list.get_mut(i)),
            _ => None,
        }
        .unwrap_or_else(|| panic!("{at}: {path}: no {token:?} in {name}"));
    }
    let value = || {
        op.get("value")
            .cloned()
            .unwrap_or_else(|| panic!("{at}: {kind} {path} needs a value"))
    };
    match (kind, parent) {
        ("add", Value::Object(map)) => {
            map.insert(last.clone(), value());
        }
        ("add", Value::Array(list)) if last == "-" => list.push(value()),
        ("add", Value::Array(list)) => {
            let i = index(last, list.len() + 1, path, at);
            list.insert(i, value());
        }
        ("replace", Value::Object(map)) => {
            assert!(
                map.contains_key(last),
                "{at}: replace {path}: nothing there"
            );
            map.insert(last.clone(), value());
        }
        ("replace", Value::Array(list)) => {
            let i = index(last, list.len(), path, at);
            list[i] = value();
        }
        ("remove", Value::Object(map)) => {
            assert!(
                map.remove(last).is_some(),
                "{at}: remove {path}: nothing there"
            );
        }
        ("remove", Value::Array(list)) => {
            let i = index(last, list.len(), path, at);
            list.remove(i);
        }
        (kind @ ("add" | "replace" | "remove"), _) => {
            panic!("{at}: {kind} {path}: the parent is not a mapping or a list")
        }
        (other, _) => panic!(
            "{at}: the JSON 6902 operation {other:?} is not supported by tests/it/k8s/kustomize.rs"
        ),
    }
}

fn index(token: &str, bound: usize, path: &str, at: &str) -> usize {
    token
        .parse::<usize>()
        .ok()
        .filter(|i| *i < bound)
        .unwrap_or_else(|| panic!("{at}: {path}: {token:?} is no index here"))
}

fn object_name(object: &Value) -> String {
    format!("{} {}", object["kind"], object["metadata"]["name"])
}

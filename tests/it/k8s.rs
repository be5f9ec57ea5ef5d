//! The deploy artifacts: `k8s/` (the kustomize base and the dev overlay)
//! renders and passes kubernetes-validate's strict schemas for Kubernetes
//! 1.32; the rendered base keeps the invariants the deployment depends on
//! (replicas, probes, drain timings, Secret-sourced passwords, routing,
//! unprivileged containers); the `Dockerfile` builds what the manifests run.
//! No cluster, Docker engine or kubectl is needed (`k8s/kustomize.rs`
//! renders the kustomizations), but `python3 -m kubernetes_validate` is
//! (scripts/test.sh installs it in `.venv`): without it the test fails.

mod kustomize;
mod manifests;
pub mod monitoring;

use serde_json::{Value, json};

use manifests::{
    KUBERNETES_VERSION, Manifests, array, base, container, containers, env, env_literal,
    env_number, kubernetes_validate, kustomize, name, pod_labels, pod_spec, port_of, repo_root,
    route, selects, to_yaml,
};

/// Renders `dir` and checks every object against the strict schemas: no
/// error, no warning (an unknown kind), and one `INFO … passed` per object.
fn assert_passes_strict_validation(dir: &str) {
    let rendered = kustomize(dir);
    let objects = rendered.len();
    assert!(objects > 0, "`{dir}` rendered nothing");
    let (ok, output) = kubernetes_validate(&to_yaml(&rendered));
    let complaints = output
        .lines()
        .any(|line| !line.trim().is_empty() && !line.starts_with("INFO "));
    assert!(
        ok && !complaints,
        "kubernetes-validate --strict -k {KUBERNETES_VERSION} rejects `{dir}`:\n{output}"
    );
    let passed = output.lines().filter(|l| l.contains(" passed ")).count();
    assert_eq!(
        passed, objects,
        "every object of `{dir}` must be checked against a schema:\n{output}"
    );
}

#[test]
fn base_passes_strict_schema_validation_for_kubernetes_1_32() {
    assert_passes_strict_validation("k8s");
}

#[test]
fn dev_overlay_passes_strict_schema_validation_for_kubernetes_1_32() {
    assert_passes_strict_validation("k8s/overlays/dev");
}

#[test]
fn app_deployments_have_their_replicas_and_probe_the_port_they_listen_on() {
    for (deployment, replicas) in [("canvas-api", 2), ("gateway", 3)] {
        let d = base().get("Deployment", deployment);
        assert_eq!(d["spec"]["replicas"], replicas, "{deployment} replicas");
        // Service links would set REDIS_PORT=tcp://… (from the Service
        // `redis`), which both binaries read as the Redis port.
        assert_eq!(
            pod_spec(d)["enableServiceLinks"],
            false,
            "{deployment}: enableServiceLinks must be false"
        );
        let c = container(d, deployment);
        let listen = port_of(env_literal(c, "LISTEN_ADDR"));
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"], path, "{deployment} {probe}");
            assert_eq!(
                manifests::container_port(d, &get["port"]),
                Some(listen),
                "{deployment} {probe} must probe LISTEN_ADDR's port"
            );
        }
    }
}

#[test]
fn gateway_pod_id_comes_from_the_downward_api() {
    let gateway = container(base().get("Deployment", "gateway"), "gateway");
    let pod_id = env(gateway, "POD_ID").expect("gateway sets POD_ID");
    assert_eq!(
        pod_id["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name",
        "POD_ID must come from the pod's name"
    );
    assert!(
        pod_id.get("value").is_none(),
        "POD_ID must not be a literal"
    );
}

#[test]
fn gateway_termination_grace_outlasts_prestop_drain_and_shutdown_grace() {
    let deployment = base().get("Deployment", "gateway");
    let gateway = container(deployment, "gateway");
    let pre_stop = gateway["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("gateway needs a preStop sleep action (the image has no shell)");
    assert!(pre_stop > 0, "the preStop sleep must let endpoints drain");
    let drain_ms = env_number(gateway, "SHUTDOWN_DRAIN_MS");
    let grace_secs = env_number(gateway, "SHUTDOWN_GRACE_SECS");
    // The gateway refuses to start otherwise.
    assert!(
        drain_ms < grace_secs * 1000,
        "SHUTDOWN_DRAIN_MS ({drain_ms}) must be shorter than SHUTDOWN_GRACE_SECS ({grace_secs})"
    );
    let termination = pod_spec(deployment)["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("gateway sets terminationGracePeriodSeconds");
    let needed = pre_stop + drain_ms.div_ceil(1000) + grace_secs;
    assert!(
        termination > needed,
        "terminationGracePeriodSeconds {termination} must exceed preStop {pre_stop} s + drain {drain_ms} ms + grace {grace_secs} s"
    );
}

#[test]
fn gateway_has_a_disruption_budget_and_a_cpu_autoscaler() {
    let deployment = base().get("Deployment", "gateway");
    let pdb = base()
        .of_kind("PodDisruptionBudget")
        .find(|p| selects(&p["spec"]["selector"], pod_labels(deployment)))
        .expect("a PodDisruptionBudget must select the gateway pods");
    assert!(
        pdb["spec"]["maxUnavailable"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "the gateway PDB must let one pod go at a time"
    );
    let hpa = base()
        .of_kind("HorizontalPodAutoscaler")
        .find(|h| h["spec"]["scaleTargetRef"]["name"] == "gateway")
        .expect("an HPA must target the gateway");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["minReplicas"], deployment["spec"]["replicas"],
        "the HPA's minimum must be the gateway's replicas"
    );
    assert!(
        array(&hpa["spec"]["metrics"])
            .iter()
            .any(|m| m["resource"]["name"] == "cpu"),
        "the HPA scales on CPU"
    );
    // Utilization is measured against the request.
    let request = &container(deployment, "gateway")["resources"]["requests"]["cpu"];
    assert!(
        request.is_string(),
        "the gateway needs a CPU request for the HPA"
    );
}

#[test]
fn redis_password_only_ever_comes_from_the_secret() {
    assert_eq!(
        base().of_kind("Secret").count(),
        0,
        "the base must not carry a Secret (a password)"
    );
    let mut holders = Vec::new();
    for workload in base().workloads() {
        for c in containers(workload) {
            let who = format!("{}/{}", name(workload), c["name"].as_str().unwrap_or("?"));
            assert!(c.get("envFrom").is_none(), "{who}: no envFrom");
            if let Some(url) = env(c, "REDIS_URL") {
                assert!(
                    url.get("value").is_none(),
                    "{who}: REDIS_URL must not be a literal"
                );
            }
            let Some(password) = env(c, "REDIS_PASSWORD") else {
                continue;
            };
            assert!(
                password.get("value").is_none(),
                "{who}: REDIS_PASSWORD must not be a literal"
            );
            let secret = &password["valueFrom"]["secretKeyRef"];
            assert_eq!(
                (&secret["name"], &secret["key"]),
                (&json!("redis-auth"), &json!("password")),
                "{who}: REDIS_PASSWORD must come from Secret redis-auth, key password"
            );
            holders.push(name(workload));
        }
    }
    holders.sort_unstable();
    assert_eq!(
        holders,
        ["canvas-api", "gateway", "redis"],
        "the containers with REDIS_PASSWORD"
    );
}

#[test]
fn redis_keeps_an_append_only_file_on_a_claim_and_only_app_pods_reach_it() {
    let redis = base().get("StatefulSet", "redis");
    let c = container(redis, "redis");
    let args: Vec<&str> = array(&c["args"]).iter().filter_map(Value::as_str).collect();
    for pair in [
        ["--appendonly", "yes"],
        ["--appendfsync", "everysec"],
        ["--requirepass", "$(REDIS_PASSWORD)"],
        ["--dir", "/data"],
    ] {
        assert!(
            args.windows(2).any(|w| w == pair),
            "redis args must hold {pair:?}: {args:?}"
        );
    }
    let claim = &redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
    assert!(
        array(&c["volumeMounts"])
            .iter()
            .any(|m| m["name"] == *claim && m["mountPath"] == "/data"),
        "redis must keep /data on its volumeClaimTemplate"
    );
    assert!(
        c["readinessProbe"].is_object(),
        "redis needs a readiness probe"
    );

    let policy = base()
        .of_kind("NetworkPolicy")
        .find(|p| selects(&p["spec"]["podSelector"], pod_labels(redis)))
        .expect("a NetworkPolicy must select the redis pods");
    assert!(array(&policy["spec"]["policyTypes"]).contains(&json!("Ingress")));
    let rules = array(&policy["spec"]["ingress"]);
    assert!(
        !rules.is_empty(),
        "the redis NetworkPolicy must allow the app pods"
    );
    for rule in rules {
        assert_eq!(
            rule["ports"],
            json!([{"protocol": "TCP", "port": 6379}]),
            "redis: port 6379 only"
        );
        let peers = array(&rule["from"]);
        assert!(
            !peers.is_empty()
                && peers.iter().all(|peer| {
                    peer.get("ipBlock").is_none() && peer.get("namespaceSelector").is_none()
                }),
            "redis: only pods of this namespace"
        );
        let mut allowed: Vec<&str> = base()
            .workloads()
            .filter(|w| {
                peers
                    .iter()
                    .any(|peer| selects(&peer["podSelector"], pod_labels(w)))
            })
            .map(name)
            .collect();
        allowed.sort_unstable();
        assert_eq!(
            allowed,
            ["canvas-api", "gateway"],
            "only the app pods may reach redis"
        );
    }
}

#[test]
fn every_container_runs_unprivileged_on_a_read_only_root() {
    for workload in base().workloads() {
        let pod = &pod_spec(workload)["securityContext"];
        assert_eq!(
            pod["runAsNonRoot"],
            true,
            "{}: pod runAsNonRoot",
            name(workload)
        );
        assert_eq!(
            pod["seccompProfile"]["type"],
            "RuntimeDefault",
            "{}: pod seccompProfile",
            name(workload)
        );
        for c in containers(workload) {
            let sc = &c["securityContext"];
            let who = format!("{}/{}", name(workload), c["name"].as_str().unwrap_or("?"));
            assert_eq!(sc["runAsNonRoot"], true, "{who}: runAsNonRoot");
            assert!(
                sc["runAsUser"].as_u64().is_some_and(|uid| uid > 0),
                "{who}: a numeric non-root runAsUser"
            );
            assert_eq!(
                sc["readOnlyRootFilesystem"], true,
                "{who}: readOnlyRootFilesystem"
            );
            assert_eq!(
                sc["allowPrivilegeEscalation"], false,
                "{who}: allowPrivilegeEscalation"
            );
            assert!(
                array(&sc["capabilities"]["drop"]).contains(&json!("ALL")),
                "{who}: capabilities must drop ALL"
            );
        }
    }
}

#[test]
fn ingress_sends_events_websockets_and_the_client_to_gateways_and_api_to_canvas_api() {
    let ingresses: Vec<&Value> = base().of_kind("Ingress").collect();
    for (path, deployment) in [
        ("/api/events", "gateway"),
        ("/api/pixel", "canvas-api"),
        ("/api/canvas.bin", "canvas-api"),
        ("/api", "canvas-api"),
        ("/ws", "gateway"),
        ("/", "gateway"),
        ("/static/main.js", "gateway"),
    ] {
        let service = route(&ingresses, path).unwrap_or_else(|| panic!("no Ingress routes {path}"));
        let port = match &service["port"]["name"] {
            Value::Null => &service["port"]["number"],
            port_name => port_name,
        };
        let service_name = service["name"].as_str().expect("a Service backend");
        let (workload, _) = base().service_target(service_name, port);
        assert_eq!(
            name(workload),
            deployment,
            "the Ingress must send {path} to {deployment}"
        );
    }
    for ingress in &ingresses {
        let annotations = &ingress["metadata"]["annotations"];
        for timeout in ["proxy-read-timeout", "proxy-send-timeout"] {
            let secs = annotations[format!("nginx.ingress.kubernetes.io/{timeout}")]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok());
            assert!(
                secs.is_some_and(|s| s >= 3600),
                "Ingress {}: {timeout} must keep idle WebSockets and SSE open (>= 3600 s)",
                name(ingress)
            );
        }
        let keys = annotations.as_object().into_iter().flatten();
        assert!(
            !keys.clone().any(|(key, _)| key.contains("affinity")),
            "Ingress {}: no session affinity",
            name(ingress)
        );
    }
    let events = ingresses
        .iter()
        .find(|i| route(&[i], "/api/events").is_some_and(|s| s["name"] == "gateway"))
        .expect("an Ingress must send /api/events to the gateway");
    assert_eq!(
        events["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-buffering"],
        "off",
        "Ingress {}: the SSE stream must not be buffered",
        name(events)
    );
}

#[test]
fn apps_reach_canvas_api_and_redis_through_services_on_their_listen_ports() {
    let gateway = container(base().get("Deployment", "gateway"), "gateway");
    let url = env_literal(gateway, "CANVAS_API_URL");
    let authority = url
        .strip_prefix("http://")
        .expect("CANVAS_API_URL must be http://");
    let (host, port) = authority
        .trim_end_matches('/')
        .split_once(':')
        .expect("CANVAS_API_URL must name the port");
    let port: u64 = port.parse().expect("CANVAS_API_URL's port is a number");
    let (workload, container_port) = base().service_target(host, &json!(port));
    assert_eq!(
        name(workload),
        "canvas-api",
        "CANVAS_API_URL must reach canvas-api"
    );
    let listen = port_of(env_literal(
        container(workload, "canvas-api"),
        "LISTEN_ADDR",
    ));
    assert_eq!(
        container_port, listen,
        "CANVAS_API_URL must reach canvas-api's LISTEN_ADDR port"
    );

    for deployment in ["canvas-api", "gateway"] {
        let c = container(base().get("Deployment", deployment), deployment);
        let host = env_literal(c, "REDIS_HOST");
        let port = env_number(c, "REDIS_PORT");
        let (workload, container_port) = base().service_target(host, &json!(port));
        assert_eq!(
            (name(workload), container_port),
            ("redis", 6379),
            "{deployment}: REDIS_HOST:REDIS_PORT must reach redis"
        );
    }
    let affinity = &base().get("Service", "gateway")["spec"]["sessionAffinity"];
    assert!(
        affinity.is_null() || *affinity == "None",
        "gateways need no session affinity"
    );
}

#[test]
fn dockerfile_builds_both_binaries_in_stages_and_runs_them_as_the_manifests_user() {
    let dockerfile =
        std::fs::read_to_string(repo_root().join("Dockerfile")).expect("read the Dockerfile");
    let instructions: Vec<(String, &str)> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(instruction, args)| (instruction.to_ascii_uppercase(), args.trim()))
        .collect();
    let stages: Vec<usize> = (0..instructions.len())
        .filter(|&i| instructions[i].0 == "FROM")
        .collect();
    assert!(stages.len() >= 2, "the Dockerfile must be multi-stage");
    let user = instructions[*stages.last().unwrap()..]
        .iter()
        .rev()
        .find(|(instruction, _)| instruction == "USER")
        .map(|(_, user)| *user)
        .expect("the runtime stage must set USER");
    let uid: u64 = user
        .split(':')
        .next()
        .and_then(|uid| uid.parse().ok())
        .expect("USER must be numeric, so Kubernetes can check runAsNonRoot");
    assert!(uid > 0, "the image must not run as root");
    assert!(
        instructions
            .iter()
            .any(|(instruction, args)| instruction == "COPY" && args.starts_with("web ")),
        "the gateway compiles web/ in: the build must copy it"
    );

    let build = dockerfile
        .split("cargo build")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the Dockerfile runs cargo build");
    assert!(
        build.contains("--release") && build.contains("--locked"),
        "cargo build --release --locked: {build}"
    );
    let packages: Vec<&str> = build
        .split(" -p ")
        .skip(1)
        .filter_map(|p| p.split_whitespace().next())
        .collect();
    for package in &packages {
        let manifest = std::fs::read_to_string(repo_root().join(package).join("Cargo.toml"))
            .unwrap_or_else(|_| panic!("the Dockerfile builds {package}, no workspace member"));
        assert!(
            manifest.contains(&format!("name = \"{package}\"")),
            "{package}/Cargo.toml must name the package {package}"
        );
    }
    for deployment in base().of_kind("Deployment") {
        let c = container(deployment, name(deployment));
        let binary = c["command"][0]
            .as_str()
            .and_then(|command| command.strip_prefix("/usr/local/bin/"))
            .expect("each Deployment picks its binary in /usr/local/bin with command");
        assert!(
            packages.contains(&binary),
            "the Dockerfile must build {binary}"
        );
        assert_eq!(
            c["securityContext"]["runAsUser"], uid,
            "{binary} must run as the image's user"
        );
    }
}

/// What `kubectl kustomize k8s/overlays/dev` (kubectl 1.32, kustomize 5.5)
/// printed, checked field by field against our renderer: the overlay's
/// namespace, generated Secret (and its hashed name everywhere it is
/// referenced), images, replicas and both kinds of patch.
#[test]
fn dev_overlay_renders_as_kubectl_kustomize_does() {
    let dev = Manifests::new(kustomize("k8s/overlays/dev"));
    for o in dev.all() {
        let expected = if o["kind"] == "Namespace" {
            Value::Null
        } else {
            json!("pixel-canvas-dev")
        };
        assert_eq!(o["metadata"]["namespace"], expected, "{}", name(o));
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "pixel-canvas",
            "{}",
            name(o)
        );
    }
    let secret = dev.of_kind("Secret").next().expect("the generated Secret");
    assert_eq!(name(secret), "redis-auth-h7972tbg65");
    assert_eq!(secret["data"]["password"], "ZGV2LW9ubHktbm90LWEtc2VjcmV0");
    for workload in dev.workloads() {
        for c in containers(workload) {
            if let Some(password) = env(c, "REDIS_PASSWORD") {
                assert_eq!(
                    password["valueFrom"]["secretKeyRef"]["name"],
                    "redis-auth-h7972tbg65",
                    "{}",
                    name(workload)
                );
            }
            if name(workload) != "redis" {
                assert_eq!(c["image"], "pixel-canvas:dev", "{}", name(workload));
            }
        }
    }
    assert_eq!(dev.get("Deployment", "canvas-api")["spec"]["replicas"], 1);
    assert_eq!(dev.get("Deployment", "gateway")["spec"]["replicas"], 2);
    let hpa = &dev.get("HorizontalPodAutoscaler", "gateway")["spec"];
    assert_eq!(
        (&hpa["minReplicas"], &hpa["maxReplicas"]),
        (&json!(2), &json!(3))
    );
    let redis = dev.get("StatefulSet", "redis");
    assert_eq!(
        redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    // The strategic-merge patch merged the container by name: its
    // resources changed, everything else stayed.
    let c = container(redis, "redis");
    assert_eq!(c["resources"]["requests"]["cpu"], "50m");
    assert_eq!(
        c["args"],
        container(base().get("StatefulSet", "redis"), "redis")["args"]
    );
}

/// A kustomization field the renderer does not implement fails the render,
/// naming the field, instead of being left out silently.
#[test]
fn a_kustomization_field_the_renderer_lacks_fails_loudly() {
    let dir = crate::harness::temp_dir("kustomize-unsupported");
    std::fs::write(
        dir.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: x-\n",
    )
    .unwrap();
    let path = dir.to_path_buf();
    let failure = std::panic::catch_unwind(|| kustomize::render(&path))
        .expect_err("an unsupported field must fail the render");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("`namePrefix` is not supported"),
        "{message}"
    );
}

/// `k8s/monitoring` (for clusters with the Prometheus Operator; its kinds
/// have no schema in kubernetes-validate, so they are checked here
/// field by field): the PodMonitor scrapes `/metrics` of exactly the
/// gateway and canvas-api pods on their `http` port, with the job label
/// the queries use; every alert has a well-formed rule and says what it
/// means; the alerts the deployment needs are there.
#[test]
fn monitoring_scrapes_both_services_and_its_alerts_are_well_formed() {
    let monitoring = Manifests::new(kustomize("k8s/monitoring"));
    assert_eq!(
        monitoring.all().count(),
        2,
        "a PodMonitor and a PrometheusRule"
    );
    for o in monitoring.all() {
        assert_eq!(o["apiVersion"], "monitoring.coreos.com/v1", "{}", name(o));
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "pixel-canvas"
        );
    }
    let monitor = monitoring.get("PodMonitor", "pixel-canvas");
    assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/name");
    let mut scraped: Vec<&str> = base()
        .workloads()
        .filter(|w| selects(&monitor["spec"]["selector"], pod_labels(w)))
        .map(name)
        .collect();
    scraped.sort_unstable();
    assert_eq!(scraped, ["canvas-api", "gateway"], "the pods scraped");
    let endpoints = array(&monitor["spec"]["podMetricsEndpoints"]);
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["path"], "/metrics");
    for deployment in ["canvas-api", "gateway"] {
        assert!(
            manifests::container_port(base().get("Deployment", deployment), &endpoints[0]["port"])
                .is_some(),
            "{deployment} has no container port {}",
            endpoints[0]["port"]
        );
    }

    let rule = monitoring.get("PrometheusRule", "pixel-canvas");
    let mut alerts = Vec::new();
    for group in array(&rule["spec"]["groups"]) {
        assert!(group["name"].is_string(), "a group needs a name");
        let rules = array(&group["rules"]);
        assert!(!rules.is_empty(), "group {} is empty", group["name"]);
        for r in rules {
            let alert = r["alert"].as_str().expect("every rule is an alert");
            let expr = r["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty() && monitoring::balanced(expr),
                "{alert}: expr {expr:?}"
            );
            if let Some(wait) = r.get("for") {
                let wait = wait.as_str().unwrap_or_default();
                let (number, unit) = wait.split_at(wait.len().saturating_sub(1));
                assert!(
                    number.parse::<u32>().is_ok() && ["s", "m", "h"].contains(&unit),
                    "{alert}: for {wait:?}"
                );
            }
            assert!(
                ["warning", "critical"].contains(&r["labels"]["severity"].as_str().unwrap_or("")),
                "{alert}: severity warning or critical"
            );
            for annotation in ["summary", "description"] {
                assert!(
                    r["annotations"][annotation]
                        .as_str()
                        .is_some_and(|t| !t.trim().is_empty()),
                    "{alert}: needs a {annotation}"
                );
            }
            alerts.push((alert.to_owned(), expr.to_owned()));
        }
    }
    let mut names: Vec<&str> = alerts.iter().map(|(a, _)| a.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), alerts.len(), "alert names are unique");
    // What the deployment must be told about, by the metric that tells it.
    for (what, metric) in [
        ("a gateway down", "up"),
        ("p99 placement latency", "gateway_placement_seconds_bucket"),
        ("slow-client closes", "gateway_queue_drops_total"),
        ("resyncs", "gateway_resyncs_total"),
        ("Redis errors (store)", "canvas_placements_failed_total"),
        ("Redis errors (publish)", "canvas_publish_failures_total"),
        (
            "Redis errors (subscription)",
            "gateway_subscriber_reconnects_total",
        ),
    ] {
        assert!(
            alerts
                .iter()
                .any(|(_, expr)| monitoring::metric_names(expr).iter().any(|m| m == metric)),
            "no alert on {what} ({metric})"
        );
    }
}

/// The Grafana dashboard is JSON Grafana imports: a uid, a title, a
/// Prometheus datasource variable, panels with unique ids on the grid, each
/// with queries that parse.
#[test]
fn the_grafana_dashboard_is_well_formed() {
    let dashboard = monitoring::dashboard();
    assert_eq!(dashboard["uid"], "pixel-canvas");
    assert!(dashboard["title"].is_string());
    assert!(dashboard["schemaVersion"].as_u64().is_some());
    assert!(
        array(&dashboard["templating"]["list"])
            .iter()
            .any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let panels = array(&dashboard["panels"]);
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids: Vec<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "every panel has a unique id");
    for panel in panels {
        let title = &panel["title"];
        let grid = &panel["gridPos"];
        assert!(
            grid["w"].as_u64().is_some_and(|w| w >= 1)
                && grid["x"]
                    .as_u64()
                    .is_some_and(|x| x + grid["w"].as_u64().unwrap_or(0) <= 24)
                && grid["h"].as_u64().is_some_and(|h| h >= 1),
            "panel {title}: gridPos {grid}"
        );
        let targets = array(&panel["targets"]);
        assert!(!targets.is_empty(), "panel {title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                monitoring::balanced(expr) && !monitoring::metric_names(expr).is_empty(),
                "panel {title}: {expr:?}"
            );
        }
    }
}

#[test]
fn canvas_api_and_gateways_believe_x_forwarded_for_from_the_pod_network() {
    // Without it, every client behind the ingress (and, for canvas-api,
    // behind the gateways' pass-through) shares one per-IP budget: one
    // person could use up everyone's sessions.
    for (deployment, container_name) in [("canvas-api", "canvas-api"), ("gateway", "gateway")] {
        let c = container(base().get("Deployment", deployment), container_name);
        let list = env_literal(c, "TRUSTED_PROXIES");
        let nets = plumbing::config::parse_cidrs(list)
            .unwrap_or_else(|e| panic!("{deployment}: TRUSTED_PROXIES: {e}"));
        for pod in ["10.244.1.7", "172.17.0.3", "192.168.3.4"] {
            let ip: std::net::IpAddr = pod.parse().unwrap();
            assert!(
                nets.iter().any(|n| n.contains(&ip)),
                "{deployment}: TRUSTED_PROXIES {list} leaves out the pod address {pod}"
            );
        }
        let public: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        assert!(
            !nets.iter().any(|n| n.contains(&public)),
            "{deployment}: TRUSTED_PROXIES {list} trusts public addresses"
        );
    }
}

#[test]
fn the_ingress_ends_idle_keep_alive_connections_before_the_services_do() {
    // ingress-nginx keeps idle upstream connections 60 s; a service that
    // closed them sooner could close one as a request is sent on it.
    for (deployment, container_name) in [("canvas-api", "canvas-api"), ("gateway", "gateway")] {
        let c = container(base().get("Deployment", deployment), container_name);
        assert!(
            env_number(c, "HEADER_READ_TIMEOUT_SECS") > 60,
            "{deployment}: HEADER_READ_TIMEOUT_SECS must outlast ingress-nginx's upstream keep-alive"
        );
    }
}

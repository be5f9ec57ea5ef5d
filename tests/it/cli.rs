//! `server --help` and `canvas-api --help`, the reference for every option:
//! grouped under headings, so the long list can be read.

use std::collections::BTreeMap;

use crate::harness::process::binary;

/// `NAME --help`: the headings in order, and each option's environment
/// variable with the heading it is under.
fn help(name: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let out = std::process::Command::new(binary(name))
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name} --help ({e}); build the binaries first"));
    assert!(out.status.success(), "{name} --help failed");
    let text = String::from_utf8(out.stdout).expect("UTF-8 help");
    let mut headings = Vec::new();
    let mut env_heading = BTreeMap::new();
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            headings.push(line.trim_end_matches(':').to_owned());
        }
        if let Some((_, rest)) = line.split_once("[env: ") {
            let var = rest.split(['=', ']']).next().unwrap_or_default().to_owned();
            let heading = headings.last().cloned().unwrap_or_default();
            env_heading.insert(var, heading);
        }
    }
    (headings, env_heading)
}

#[test]
fn help_groups_every_option_under_a_heading() {
    for (name, expected, placed) in [
        (
            "server",
            &[
                "Options",
                "Listening",
                "Cluster",
                "Redis",
                "Board",
                "Embedded store",
                "Identity",
                "HTTP",
                "Client limits",
                "Gateway tuning",
                "Shutdown",
            ][..],
            &[
                ("LISTEN_ADDR", "Listening"),
                ("CANVAS_API_URL", "Cluster"),
                ("REDIS_URL", "Redis"),
                ("COOLDOWN_MS", "Board"),
                ("DATA_DIR", "Embedded store"),
                ("AUTH_SECRET", "Identity"),
                ("CORS_ALLOWED_ORIGINS", "HTTP"),
                ("MAX_CONNECTIONS_PER_IP", "Client limits"),
                ("FANOUT_WINDOW_MS", "Gateway tuning"),
                ("SHUTDOWN_GRACE_SECS", "Shutdown"),
            ][..],
        ),
        (
            "canvas-api",
            &[
                "Options",
                "Listening",
                "Board",
                "Redis",
                "Embedded store",
                "Identity",
                "HTTP",
            ][..],
            &[
                ("LISTEN_ADDR", "Listening"),
                ("ADMIN_TOKEN", "Board"),
                ("REDIS_TLS_CA_FILE", "Redis"),
                ("TRUSTED_PROXIES", "Identity"),
                ("REQUEST_TIMEOUT_SECS", "HTTP"),
            ][..],
        ),
    ] {
        let (headings, env_heading) = help(name);
        for heading in expected {
            assert!(
                headings.iter().any(|h| h == heading),
                "{name} --help has no heading {heading:?}: {headings:?}"
            );
        }
        for (var, heading) in placed {
            assert_eq!(
                env_heading.get(*var).map(String::as_str),
                Some(*heading),
                "{name} --help: {var}"
            );
        }
        // Only --help and --version stay under the general heading.
        let general: Vec<&String> = env_heading
            .iter()
            .filter(|(_, h)| h.as_str() == "Options")
            .map(|(var, _)| var)
            .collect();
        assert!(general.is_empty(), "{name}: {general:?} under no heading");
    }
}

//! Redis over TLS with an ACL user: a private CA made with `openssl`, a
//! `redis-server` that only speaks TLS, requires client certificates and has
//! its `default` user switched off, and the services reaching it with
//! `REDIS_USERNAME`/`REDIS_PASSWORD` and `REDIS_TLS_*` files.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use protocol::ServerMessage;
use tokio::process::{Child, Command};

use crate::harness::client::pixel_event;
use crate::harness::redis_server::free_port;
use crate::harness::{Process, TempDir, WsClient, temp_dir};

const USER: &str = "canvas";
const PASSWORD: &str = "tls-test-password";

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn create() -> Pki {
        let dir = temp_dir("redis-tls");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=canvas test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            std::fs::write(
                dir.join(format!("{name}.ext")),
                format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
            )
            .expect("write extensions");
            openssl(
                &dir,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN=canvas test {name}"),
                ],
            );
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
        }
        Pki { dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); install it with `apt-get install openssl` (scripts/test.sh does)"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// redis-server on a TLS port only, client certificates required, and only
/// the ACL user `canvas` can log in.
struct TlsRedis {
    port: u16,
    _child: Child,
}

impl TlsRedis {
    async fn start(pki: &Pki) -> TlsRedis {
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", "0", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--tls-port", &port.to_string()])
                .args(["--tls-cert-file", &pki.file("server.pem")])
                .args(["--tls-key-file", &pki.file("server.key")])
                .args(["--tls-ca-cert-file", &pki.file("ca.pem")])
                .args(["--tls-auth-clients", "yes"])
                .args(["--user", "default", "off"])
                .args(["--user", USER, "on", &format!(">{PASSWORD}"), "~*", "&*", "+@all"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run redis-server ({e}); install it with `apt-get install redis-server` (scripts/test.sh does)"));
            let redis = TlsRedis {
                port,
                _child: child,
            };
            if redis.wait_ready(pki).await {
                return redis;
            }
            let mut child = redis._child;
            let _ = child.start_kill();
        }
        panic!("a TLS redis-server did not start on any free port (is it built with TLS?)");
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// A connection as the services make it: TLS with the test CA and the
    /// client certificate, logged in as the ACL user.
    async fn conn(&self, pki: &Pki) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let read = |name: &str| std::fs::read(pki.dir.join(name)).expect("read pki file");
        let url = format!("rediss://{USER}:{PASSWORD}@127.0.0.1:{}", self.port);
        let client = redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: read("client.pem"),
                    client_key: read("client.key"),
                }),
                root_cert: Some(read("ca.pem")),
            },
        )?;
        client.get_multiplexed_async_connection().await
    }

    async fn wait_ready(&self, pki: &Pki) -> bool {
        for _ in 0..200 {
            if let Ok(mut conn) = self.conn(pki).await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }
}

fn tls_env(redis: &TlsRedis, pki: &Pki) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", redis.url()),
        ("REDIS_USERNAME", USER.to_owned()),
        ("REDIS_PASSWORD", PASSWORD.to_owned()),
        ("REDIS_TLS_CA_FILE", pki.file("ca.pem")),
        ("REDIS_TLS_CERT_FILE", pki.file("client.pem")),
        ("REDIS_TLS_KEY_FILE", pki.file("client.key")),
        ("COOLDOWN_MS", "0".to_owned()),
    ]
}

fn with(
    env: &[(&'static str, String)],
    key: &'static str,
    value: Option<String>,
) -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = env.iter().filter(|(k, _)| *k != key).cloned().collect();
    if let Some(v) = value {
        env.push((key, v));
    }
    env
}

#[tokio::test]
async fn placements_travel_over_mutual_tls_as_an_acl_user() {
    let pki = Pki::create();
    let redis = TlsRedis::start(&pki).await;
    let env = tls_env(&redis, &pki);
    let api = Process::spawn("canvas-api", &env).await;
    let mut gateway_env = env.clone();
    gateway_env.push(("CANVAS_API_URL", api.http()));
    let a = Process::spawn(
        "server",
        &with(&gateway_env, "POD_ID", Some("tls-a".into())),
    )
    .await;
    let b = Process::spawn(
        "server",
        &with(&gateway_env, "POD_ID", Some("tls-b".into())),
    )
    .await;
    crate::harness::http::wait_ready(&a.http()).await;
    crate::harness::http::wait_ready(&b.http()).await;

    let mut watcher = WsClient::connect(&b.ws(), Some("watcher")).await;
    let mut writer = WsClient::connect(&a.ws(), Some("writer")).await;
    writer.place(3, 4, "#FF4500", 1).await;
    let seq = match writer.reply_to(1).await {
        ServerMessage::Ack { seq, .. } => seq,
        other => panic!("expected an ack, got {other:?}"),
    };
    // Published by gateway A, received over gateway B's TLS subscription.
    let event = watcher
        .expect("the pixel from the other gateway", |m| {
            pixel_event(m, 3, 4).is_some()
        })
        .await;
    assert_eq!(pixel_event(&event, 3, 4).unwrap().seq, seq);

    // Stored in the TLS Redis, by the ACL user.
    let mut conn = redis.conn(&pki).await.expect("test connection");
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .expect("CLIENT LIST");
    let users: Vec<&str> = clients
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("user=")))
        .collect();
    assert!(users.len() >= 4, "services are connected: {clients}");
    assert!(users.iter().all(|u| *u == USER), "{clients}");
    let (width, _, _, rgb) = crate::harness::http::canvas_bin(&api.http()).await;
    assert_eq!(
        crate::harness::http::pixel_at(&rgb, width, 3, 4),
        [0xFF, 0x45, 0x00]
    );
}

#[tokio::test]
async fn wrong_tls_or_credentials_stop_the_service_with_the_reason() {
    let pki = Pki::create();
    let redis = TlsRedis::start(&pki).await;
    let env = tls_env(&redis, &pki);

    // The system's roots do not know the test CA.
    let (status, log) =
        Process::spawn_expecting_failure("canvas-api", &with(&env, "REDIS_TLS_CA_FILE", None))
            .await;
    assert!(!status.success());
    assert!(log.to_lowercase().contains("certificate"), "{log}");

    // No client certificate: the server's `tls-auth-clients yes` refuses.
    let no_cert = with(
        &with(&env, "REDIS_TLS_CERT_FILE", None),
        "REDIS_TLS_KEY_FILE",
        None,
    );
    let (status, _) = Process::spawn_expecting_failure("canvas-api", &no_cert).await;
    assert!(!status.success());

    // A wrong password for the ACL user.
    let (status, log) = Process::spawn_expecting_failure(
        "canvas-api",
        &with(&env, "REDIS_PASSWORD", Some("not-it".into())),
    )
    .await;
    assert!(!status.success());
    assert!(
        log.contains("WRONGPASS") || log.to_lowercase().contains("auth"),
        "{log}"
    );

    // A CA file that is not PEM: refused at start, naming the variable.
    let bad = pki.dir.join("bad.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let (status, log) = Process::spawn_expecting_failure(
        "server",
        &with(&env, "REDIS_TLS_CA_FILE", Some(bad.display().to_string())),
    )
    .await;
    assert!(!status.success());
    assert!(log.contains("TLS"), "{log}");

    // TLS files with a plain redis:// URL: a configuration error.
    let (status, log) = Process::spawn_expecting_failure(
        "canvas-api",
        &with(
            &env,
            "REDIS_URL",
            Some(format!("redis://127.0.0.1:{}", redis.port)),
        ),
    )
    .await;
    assert!(!status.success());
    assert!(log.contains("rediss://"), "{log}");
}

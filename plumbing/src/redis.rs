//! Reaching Redis the same way from every service: `REDIS_*` options
//! ([`RedisArgs`]) turned into one `ConnectionInfo` that carries the ACL
//! user and the parsed TLS certificates, and a connection that reconnects
//! by itself and gives up on a call in time ([`connect_manager`]).

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::ConnectionManager;

/// How long one Redis call may take before it fails (the caller reports
/// `unavailable`; nothing is acknowledged).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection that reconnects by itself and gives up on a call after
/// [`RESPONSE_TIMEOUT`], so an unreachable Redis is an error, not a hang.
/// A node of a Redis Cluster is refused here, at start-up: the services
/// keep the board in keys of many hash slots, which one node of a cluster
/// would answer with `MOVED` for most of them, pixel by pixel.
pub async fn connect_manager(
    info: redis::ConnectionInfo,
) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(info)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(RESPONSE_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    let mut conn = ConnectionManager::new_with_config(client, config).await?;
    let cluster: String = match redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await
    {
        Ok(info) => info,
        // `INFO` is one of the "dangerous" commands an ACL user is usually
        // denied: then it cannot be told, and nothing else needs `INFO`.
        Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
            tracing::debug!(error = %e, "INFO cluster refused; not checking for a Redis Cluster");
            String::new()
        }
        Err(e) => return Err(e),
    };
    if cluster_enabled(&cluster) {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "REDIS_URL names a node of a Redis Cluster",
            "this build keeps the board on one Redis node (a standalone server, or a primary \
             with replicas); Redis Cluster is not supported yet (ARCHITECTURE.md, \"Growing past \
             one Redis\")"
                .to_owned(),
        )));
    }
    Ok(conn)
}

/// A connection to a Redis Cluster, from any of its nodes: it learns the
/// slot map, routes each call by its first key, follows `MOVED`/`ASK`,
/// reconnects to a node that comes back, and gives up on a call after
/// [`RESPONSE_TIMEOUT`] like [`connect_manager`].
pub async fn connect_cluster(
    nodes: Vec<redis::ConnectionInfo>,
) -> Result<redis::cluster_async::ClusterConnection, redis::RedisError> {
    redis::cluster::ClusterClient::builder(nodes)
        .connection_timeout(RESPONSE_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(2)
        .max_retry_wait(500)
        .build()?
        .get_async_connection()
        .await
}

/// A connection to the Redis a service runs on, one node or a cluster, for
/// code that sends single-key commands and scripts either way (session
/// claims, the shared secret, user channels).
#[derive(Clone)]
pub enum Connection {
    Node(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Node(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether `INFO cluster` says the server is a node of a Redis Cluster.
fn cluster_enabled(info: &str) -> bool {
    info.lines().any(|line| line.trim() == "cluster_enabled:1")
}

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisArgs {
    /// Redis URL (`redis://[user:password@]host:port/db`, or `rediss://` for
    /// TLS). When neither this nor REDIS_HOST is set, the board is kept by the
    /// embedded on-disk store instead.
    #[arg(long = "redis-url", env = "REDIS_URL")]
    pub url: Option<String>,
    /// Nodes of a Redis Cluster to start from, comma-separated
    /// (`host:port` or `redis://host:port`; `rediss://`, or REDIS_TLS, for
    /// TLS), instead of REDIS_URL: the board is then kept by chunks spread
    /// over the cluster's masters. REDIS_PASSWORD, REDIS_USERNAME and
    /// REDIS_TLS_* apply to every node. canvas-api only, for now.
    #[arg(long = "redis-cluster-nodes", env = "REDIS_CLUSTER_NODES")]
    pub cluster_nodes: Option<String>,

    /// Redis host, the prototype's way (used when REDIS_URL is unset).
    #[arg(long = "redis-host", env = "REDIS_HOST")]
    pub host: Option<String>,

    /// Redis port, with REDIS_HOST.
    #[arg(long = "redis-port", env = "REDIS_PORT", default_value_t = 6379)]
    pub port: u16,

    /// Redis password, with REDIS_HOST (or to add to a REDIS_URL without one).
    #[arg(
        long = "redis-password",
        env = "REDIS_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// Redis ACL user (Redis 6+), with REDIS_PASSWORD; added to a REDIS_URL
    /// that names no user. Without it, the password is the `default` user's.
    #[arg(long = "redis-username", env = "REDIS_USERNAME")]
    pub username: Option<String>,

    /// Redis database number, with REDIS_HOST.
    #[arg(long = "redis-db", env = "REDIS_DB", default_value_t = 0)]
    pub db: i64,

    /// Connect with TLS (as a `rediss://` URL does), with REDIS_HOST.
    #[arg(long = "redis-tls", env = "REDIS_TLS", default_value_t = false)]
    pub tls: bool,

    /// PEM file of the certificate authorities to trust for Redis's TLS
    /// certificate instead of the system's (a private CA).
    #[arg(long = "redis-tls-ca-file", env = "REDIS_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// PEM client certificate (chain) for Redis servers that require mutual
    /// TLS (`tls-auth-clients yes`), with REDIS_TLS_KEY_FILE.
    #[arg(long = "redis-tls-cert-file", env = "REDIS_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of REDIS_TLS_CERT_FILE.
    #[arg(long = "redis-tls-key-file", env = "REDIS_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
}

/// What the `REDIS_*` options name.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// Nothing: the embedded store.
    Embedded,
    /// One node (a standalone server, or a primary with replicas).
    Node(Box<redis::ConnectionInfo>),
    /// The nodes of a Redis Cluster to start from.
    Cluster(Vec<redis::ConnectionInfo>),
}

impl RedisArgs {
    /// What the options name, for a service that can run on a cluster.
    pub fn target(&self) -> Result<RedisTarget, String> {
        use redis::IntoConnectionInfo;
        let Some(nodes) = &self.cluster_nodes else {
            return Ok(match self.connection_info()? {
                Some(info) => RedisTarget::Node(Box::new(info)),
                None => RedisTarget::Embedded,
            });
        };
        if self.url.is_some() || self.host.is_some() {
            return Err(
                "REDIS_CLUSTER_NODES and REDIS_URL/REDIS_HOST name different Redis deployments; set one"
                    .into(),
            );
        }
        let scheme = if self.tls { "rediss" } else { "redis" };
        let infos = nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|node| {
                let url = if node.contains("://") {
                    node.to_owned()
                } else {
                    format!("{scheme}://{node}")
                };
                let info = url.as_str().into_connection_info().map_err(|e| {
                    format!("REDIS_CLUSTER_NODES: {node:?} is not a Redis address: {e}")
                })?;
                if info.redis_settings().db() != 0 {
                    return Err(format!(
                        "REDIS_CLUSTER_NODES: {node:?} names a database; a Redis Cluster has only database 0"
                    ));
                }
                self.settle(info)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if infos.is_empty() {
            return Err("REDIS_CLUSTER_NODES names no node".into());
        }
        Ok(RedisTarget::Cluster(infos))
    }

    /// The Redis connection settings, or `None` for the embedded store. With
    /// TLS files given, the returned settings carry the parsed certificates,
    /// so every connection made from them (commands, pub/sub) uses them.
    /// Refuses REDIS_CLUSTER_NODES: only [`Self::target`]'s callers run on
    /// a cluster.
    pub fn connection_info(&self) -> Result<Option<redis::ConnectionInfo>, String> {
        use redis::IntoConnectionInfo;
        if self.cluster_nodes.is_some() {
            return Err(
                "REDIS_CLUSTER_NODES is set, but this service does not run on a Redis Cluster \
                 yet (only canvas-api does; ARCHITECTURE.md, \"Growing past one Redis\")"
                    .into(),
            );
        }
        let info = match (&self.url, &self.host) {
            (Some(url), _) => url
                .as_str()
                .into_connection_info()
                .map_err(|e| format!("REDIS_URL is not a Redis URL: {e}"))?,
            (None, Some(host)) => {
                let scheme = if self.tls { "rediss" } else { "redis" };
                format!("{scheme}://{host}:{}/{}", self.port, self.db)
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| {
                        format!("REDIS_HOST/REDIS_PORT/REDIS_DB do not form a Redis address: {e}")
                    })?
            }
            (None, None) => {
                if self.has_tls_files() || self.username.is_some() {
                    return Err(
                        "REDIS_USERNAME and REDIS_TLS_* need REDIS_URL or REDIS_HOST".into(),
                    );
                }
                return Ok(None);
            }
        };
        self.settle(info).map(Some)
    }

    /// `info` with the password, ACL user and TLS files of the options.
    fn settle(&self, info: redis::ConnectionInfo) -> Result<redis::ConnectionInfo, String> {
        let mut settings = info.redis_settings().clone();
        if settings.password().is_none()
            && let Some(password) = &self.password
        {
            settings = settings.set_password(password.clone());
        }
        if settings.username().is_none()
            && let Some(username) = &self.username
        {
            if settings.password().is_none() {
                return Err(
                    "REDIS_USERNAME needs a password (REDIS_PASSWORD or in REDIS_URL)".into(),
                );
            }
            settings = settings.set_username(username.clone());
        }
        let info = info.set_redis_settings(settings);
        if !self.has_tls_files() {
            return Ok(info);
        }
        if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            return Err(
                "REDIS_TLS_CA_FILE/REDIS_TLS_CERT_FILE/REDIS_TLS_KEY_FILE need TLS: a rediss:// REDIS_URL or REDIS_TLS=true"
                    .into(),
            );
        }
        let read = |var: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("{var} {}: {e}", path.display()))
        };
        let root_cert = match &self.tls_ca_file {
            Some(path) => {
                let pem = read("REDIS_TLS_CA_FILE", path)?;
                // An empty trust store would fail later, as "unknown issuer".
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(format!(
                        "REDIS_TLS_CA_FILE {}: no PEM certificate in it (TLS)",
                        path.display()
                    ));
                }
                Some(pem)
            }
            None => None,
        };
        let client_tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("REDIS_TLS_CERT_FILE", cert)?,
                client_key: read("REDIS_TLS_KEY_FILE", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together".into());
            }
        };
        let client = redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        )
        .map_err(|e| format!("Redis TLS files: {e}"))?;
        Ok(client.get_connection_info().clone())
    }

    fn has_tls_files(&self) -> bool {
        self.tls_ca_file.is_some() || self.tls_cert_file.is_some() || self.tls_key_file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_cluster_tells_a_cluster_node_from_a_standalone_server() {
        assert!(cluster_enabled("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!cluster_enabled("# Cluster\r\ncluster_enabled:0\r\n"));
        assert!(!cluster_enabled(""));
    }

    fn args(url: Option<&str>, host: Option<&str>, password: Option<&str>) -> RedisArgs {
        RedisArgs {
            url: url.map(Into::into),
            cluster_nodes: None,
            host: host.map(Into::into),
            port: 6380,
            password: password.map(Into::into),
            username: None,
            db: 2,
            tls: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }

    #[test]
    fn cluster_nodes_are_a_list_of_addresses_each_with_the_password() {
        let mut a = args(None, None, Some("pw"));
        a.cluster_nodes = Some(" 10.0.0.1:7000, redis://10.0.0.2:7001 ,".into());
        let RedisTarget::Cluster(nodes) = a.target().unwrap() else {
            panic!("not a cluster");
        };
        let described: Vec<(String, Option<&str>)> = nodes
            .iter()
            .map(|n| (n.addr().to_string(), n.redis_settings().password()))
            .collect();
        assert_eq!(
            described,
            [
                ("10.0.0.1:7000".to_owned(), Some("pw")),
                ("10.0.0.2:7001".to_owned(), Some("pw"))
            ]
        );
        // A service that cannot run on a cluster says so.
        let refused = a.connection_info().unwrap_err();
        assert!(refused.contains("only canvas-api"), "{refused}");
    }

    #[test]
    fn cluster_nodes_refuse_what_a_cluster_cannot_be() {
        let mut a = args(Some("redis://h:1/0"), None, None);
        a.cluster_nodes = Some("h:7000".into());
        assert!(a.target().unwrap_err().contains("set one"));
        let mut a = args(None, None, None);
        a.cluster_nodes = Some(" , ".into());
        assert!(a.target().unwrap_err().contains("names no node"));
        a.cluster_nodes = Some("redis://h:7000/3".into());
        assert!(a.target().unwrap_err().contains("only database 0"));
        a.cluster_nodes = Some("h:notaport".into());
        assert!(a.target().unwrap_err().contains("not a Redis address"));
    }

    #[test]
    fn no_redis_means_the_embedded_store() {
        assert!(args(None, None, None).connection_info().unwrap().is_none());
    }

    #[test]
    fn host_port_db_and_password_form_an_address() {
        let info = args(None, Some("redis.local"), Some("s3cret"))
            .connection_info()
            .unwrap()
            .unwrap();
        assert_eq!(info.addr().to_string(), "redis.local:6380");
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
    }

    #[test]
    fn a_password_joins_a_url_without_one_but_never_overrides_it() {
        let info = args(Some("redis://h:1/0"), None, Some("extra"))
            .connection_info()
            .unwrap()
            .unwrap();
        assert_eq!(info.redis_settings().password(), Some("extra"));
        let info = args(Some("redis://:inurl@h:1/0"), None, Some("extra"))
            .connection_info()
            .unwrap()
            .unwrap();
        assert_eq!(info.redis_settings().password(), Some("inurl"));
    }

    #[test]
    fn an_acl_user_joins_the_password() {
        let mut a = args(None, Some("h"), Some("pw"));
        a.username = Some("canvas".into());
        let info = a.connection_info().unwrap().unwrap();
        assert_eq!(info.redis_settings().username(), Some("canvas"));
        assert_eq!(info.redis_settings().password(), Some("pw"));
        let mut a = args(None, Some("h"), None);
        a.username = Some("canvas".into());
        assert!(a.connection_info().unwrap_err().contains("REDIS_USERNAME"));
    }

    #[test]
    fn tls_files_need_a_tls_address_and_readable_pem() {
        let mut a = args(Some("redis://h:1/0"), None, None);
        a.tls_ca_file = Some("ca.pem".into());
        assert!(a.connection_info().unwrap_err().contains("rediss://"));

        let mut a = args(None, Some("h"), None);
        a.tls = true;
        assert!(matches!(
            a.connection_info().unwrap().unwrap().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ));
        a.tls_ca_file = Some("/nonexistent/ca.pem".into());
        assert!(
            a.connection_info()
                .unwrap_err()
                .contains("REDIS_TLS_CA_FILE")
        );

        let dir = std::env::temp_dir().join(format!("canvas-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        a.tls_ca_file = Some(garbage);
        let err = a.connection_info().unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("TLS"), "{err}");

        let mut a = args(Some("rediss://h:1/0"), None, None);
        a.tls_cert_file = Some("c.pem".into());
        assert!(a.connection_info().unwrap_err().contains("go together"));
    }

    #[test]
    fn a_bad_url_names_the_variable() {
        let err = args(Some("http://x"), None, None)
            .connection_info()
            .unwrap_err();
        assert!(err.contains("REDIS_URL"), "{err}");
    }
}

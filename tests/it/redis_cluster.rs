//! Redis Cluster: not supported yet (ARCHITECTURE.md, "Growing past one
//! Redis"). Pointed at one of its nodes, both services stop at start-up and
//! say so, instead of failing pixel by pixel with `MOVED`.

use crate::harness::Process;
use crate::harness::redis_cluster::RedisCluster;

#[tokio::test]
async fn services_pointed_at_a_redis_cluster_node_refuse_to_start_and_say_why() {
    let cluster = RedisCluster::start(3).await;
    // It is a real cluster: a key of another node's slots is redirected.
    let client = redis::Client::open(cluster.url(0)).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut moved = 0;
    for i in 0..20 {
        let answer: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg(format!("probe:{i}"))
            .query_async(&mut conn)
            .await;
        if answer.is_err_and(|e| e.to_string().to_lowercase().contains("moved")) {
            moved += 1;
        }
    }
    assert!(moved > 0, "no key of 20 lay on another node");

    for bin in ["canvas-api", "server"] {
        let (status, log) =
            Process::spawn_expecting_failure(bin, &[("REDIS_URL", cluster.url(1))]).await;
        assert!(
            !status.success(),
            "{bin} started against a cluster node:\n{log}"
        );
        assert!(
            log.contains("Redis Cluster is not supported yet"),
            "{bin} did not say why:\n{log}"
        );
    }
}

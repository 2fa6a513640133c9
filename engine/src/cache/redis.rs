//! The Redis cache, shared by every instance: each token bucket is updated by one Lua script
//! on the server's clock, each claim is a `SET NX PX`. A single server or a Redis Cluster: every
//! command and script touches one key, so each goes to the node holding that key's slot.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, Script, Value};

use super::{CacheError, Decision, Rate};
use crate::redact;

/// How long `open` waits for Redis before giving up, so a wrong URL fails startup quickly.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// Per connection attempt and per command. Short, because a rate limit sits on the request
/// path: a stalled Redis must fail a check quickly rather than hold every request.
const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// Reconnection attempts per lost connection; each later command starts a new round, so a
/// few is enough and keeps a command's wait short while Redis is down.
const RECONNECT_RETRIES: usize = 2;

const BUCKET_PREFIX: &str = "junction:rl:";
const CLAIM_PREFIX: &str = "junction:claim:";
const VALUE_PREFIX: &str = "junction:kv:";

/// Refills bucket `KEYS[1]` (ARGV: tokens per second, burst) and takes a token if one is
/// there; returns `{taken (0 or 1), tokens left as a string}`. Time comes from the server
/// (`TIME`, microseconds, exact in a double) so instances whose clocks disagree still share
/// one bucket; a clock that steps back refills nothing rather than going negative. The key
/// lives about as long as the bucket takes to refill, after which a new full one is the same.
const TAKE_LUA: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  at = now
end
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', at)
redis.call('PEXPIRE', KEYS[1], math.min(math.ceil((burst - tokens) * 1000 / rate) + 1000, 2147483647))
return {taken, tostring(tokens)}
";

/// Hashed once; `invoke_async` sends EVALSHA and falls back to loading the script.
static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(TAKE_LUA));

/// A handle on Redis; cheap to clone, all clones share one self-healing connection.
#[derive(Clone)]
pub struct RedisCache {
    connection: Connection,
    /// The URL, password masked, for messages.
    url: String,
}

/// One server's connection, or a cluster's (which routes each command by its key's slot and
/// follows the cluster's topology as it changes).
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisCache {
    pub(super) async fn open(url: &str) -> Result<RedisCache, CacheError> {
        let shown = redact::url(url);
        let client = Client::open(url).map_err(|source| CacheError::InvalidUrl { url: shown.clone(), source })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(IO_TIMEOUT))
            .set_response_timeout(Some(IO_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(IO_TIMEOUT);
        let connect = async { Ok(Connection::Single(ConnectionManager::new_with_config(client, config).await?)) };
        let cache = Self::answering(shown, connect).await?;
        tracing::info!(cache = %cache.url, "connected to the Redis cache");
        Ok(cache)
    }

    /// `redis+cluster://[user:password@]host:port,host:port,…`: the cluster's seed nodes.
    pub(super) async fn open_cluster(url: &str) -> Result<RedisCache, CacheError> {
        let shown = redact::url(url);
        let invalid = |source| CacheError::InvalidUrl { url: shown.clone(), source };
        let nodes = cluster_nodes(url).map_err(invalid)?;
        let client = ClusterClient::builder(nodes)
            .connection_timeout(IO_TIMEOUT)
            .response_timeout(IO_TIMEOUT)
            .retries(RECONNECT_RETRIES as u32)
            .build()
            .map_err(invalid)?;
        let connect = async { Ok(Connection::Cluster(client.get_async_connection().await?)) };
        let cache = Self::answering(shown, connect).await?;
        tracing::info!(cache = %cache.url, "connected to the Redis Cluster cache");
        Ok(cache)
    }

    /// The cache on the connection `connect` makes, once it answers a PING: connecting alone
    /// can succeed against a server that refuses every command (protected mode, a missing
    /// AUTH). Within [`OPEN_TIMEOUT`].
    async fn answering(
        shown: String,
        connect: impl std::future::Future<Output = Result<Connection, RedisError>>,
    ) -> Result<RedisCache, CacheError> {
        let ready = async {
            let mut connection = connect.await?;
            redis::cmd("PING").query_async::<()>(&mut connection).await?;
            Ok(connection)
        };
        match tokio::time::timeout(OPEN_TIMEOUT, ready).await {
            Ok(Ok(connection)) => Ok(RedisCache { connection, url: shown }),
            Ok(Err(source)) => Err(CacheError::Unreachable { url: shown, source }),
            Err(_) => Err(CacheError::Timeout { url: shown, after: OPEN_TIMEOUT }),
        }
    }

    pub(super) async fn take(&self, key: &str, rate: Rate) -> Result<Decision, CacheError> {
        let (taken, tokens): (i64, f64) = TAKE
            .key(format!("{BUCKET_PREFIX}{key}"))
            .arg(rate.per_second)
            .arg(rate.burst)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(self.failed("EVALSHA"))?;
        Ok(Decision::after_take(taken == 1, tokens, rate))
    }

    pub(super) async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        // `Cache::claim` keeps the TTL within a year, far inside u64 milliseconds.
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{CLAIM_PREFIX}{key}"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut self.connection.clone())
            .await
            .map_err(self.failed("SET"))?;
        Ok(set.is_some())
    }

    pub(super) async fn release(&self, key: &str) -> Result<(), CacheError> {
        redis::cmd("DEL")
            .arg(format!("{CLAIM_PREFIX}{key}"))
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(self.failed("DEL"))
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        redis::cmd("GET")
            .arg(format!("{VALUE_PREFIX}{key}"))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(self.failed("GET"))
    }

    pub(super) async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        redis::cmd("SET")
            .arg(format!("{VALUE_PREFIX}{key}"))
            .arg(value)
            .arg("PX")
            .arg(millis)
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(self.failed("SET"))
    }

    pub(super) async fn remove(&self, key: &str) -> Result<(), CacheError> {
        redis::cmd("DEL")
            .arg(format!("{VALUE_PREFIX}{key}"))
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(self.failed("DEL"))
    }

    pub(super) async fn ping(&self) -> Result<(), CacheError> {
        redis::cmd("PING").query_async::<()>(&mut self.connection.clone()).await.map_err(self.failed("PING"))
    }

    /// The URL, password masked.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    fn failed(&self, op: &'static str) -> impl FnOnce(RedisError) -> CacheError + '_ {
        move |source| CacheError::Command { op, url: self.url.clone(), source }
    }
}

/// The node URLs of `redis+cluster://[auth@]host:port,host:port/…` (`rediss+` for TLS), each
/// with the credentials and the scheme.
fn cluster_nodes(url: &str) -> Result<Vec<String>, RedisError> {
    let bad =
        |why: &str| RedisError::from((redis::ErrorKind::InvalidClientConfig, "invalid cluster URL", why.to_owned()));
    let (scheme, rest) = match url.split_once("+cluster://") {
        Some(("redis", rest)) => ("redis", rest),
        Some(("rediss", rest)) => ("rediss", rest),
        _ => return Err(bad("use redis+cluster://host:port,host:port")),
    };
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.split(['/', '?']).next().unwrap_or_default();
    let nodes: Vec<String> =
        hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(|h| format!("{scheme}://{auth}{h}")).collect();
    if nodes.is_empty() {
        return Err(bad("name at least one node: redis+cluster://host:port,host:port"));
    }
    Ok(nodes)
}

/// Not derived: the connection's own `Debug` is not ours to vouch for as password-free.
impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache").field("url", &self.url).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::cache::Cache;
    use crate::cache::contract::{redis_cluster_url, redis_url, test_redis, test_redis_cluster, unique};

    #[tokio::test]
    async fn two_instances_on_one_url_share_a_bucket() {
        let (a, b) = (test_redis().await, test_redis().await);
        let key = unique("shared");
        let rate = Rate { per_second: 0.01, burst: 2 };
        assert_eq!(a.take(&key, rate).await.expect("take"), Decision::Allowed { remaining: 1 });
        assert_eq!(b.take(&key, rate).await.expect("take"), Decision::Allowed { remaining: 0 });
        assert!(matches!(a.take(&key, rate).await.expect("take"), Decision::Limited { .. }));
        assert!(a.claim(&key, Duration::from_secs(10)).await.expect("claim"));
        assert!(!b.claim(&key, Duration::from_secs(10)).await.expect("claim"), "b sees a's claim");
    }

    #[tokio::test]
    async fn buckets_are_prefixed_and_expire_once_refilled() {
        let cache = test_redis().await;
        let key = unique("expiry");
        // Empty after one take: 2 tokens to refill at 1/s, plus a second of slack.
        cache.take(&key, Rate { per_second: 1.0, burst: 2 }).await.expect("take");
        cache.take(&key, Rate { per_second: 1.0, burst: 2 }).await.expect("take");
        let client = Client::open(redis_url()).expect("the test URL parses");
        let mut raw = client.get_multiplexed_async_connection().await.expect("Redis answered a moment ago");
        let ttl: i64 = redis::cmd("PTTL").arg(format!("junction:rl:{key}")).query_async(&mut raw).await.expect("PTTL");
        assert!((2_500..=3_000).contains(&ttl), "PTTL {ttl}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_fast_naming_the_url() {
        let started = Instant::now();
        let err = Cache::open("redis://127.0.0.1:1").await.expect_err("nothing listens on port 1");
        assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
        assert!(err.to_string().contains("redis://127.0.0.1:1"), "{err}");
    }

    #[tokio::test]
    async fn passwords_never_show() {
        let err = Cache::open("redis://app:hunter2@127.0.0.1:1/0").await.expect_err("nothing listens on port 1");
        let message = format!("{err} {err:?}");
        assert!(message.contains("redis://app:***@127.0.0.1:1/0") && !message.contains("hunter2"), "{message}");

        // Redis's `default` user takes any password unless one was configured.
        let with_password = redis_url().replacen("redis://", "redis://default:hunter2@", 1);
        let cache = Cache::open(&with_password).await.expect("the default user accepts any password");
        let shown = format!("{} {cache:?}", cache.describe());
        assert!(shown.contains("default:***@") && !shown.contains("hunter2"), "{shown}");
    }

    /// On a cluster the keys live on the nodes their slots belong to: a hundred claims land on
    /// every node, and each is seen through the cluster connection (a command sent to the
    /// wrong node would fail with MOVED, or miss).
    #[tokio::test]
    async fn a_cluster_spreads_the_keys_over_its_nodes() {
        let cache = test_redis_cluster().await;
        let run = unique("spread");
        for n in 0..100 {
            assert!(cache.claim(&format!("{run}:{n}"), Duration::from_secs(60)).await.expect("claim"));
        }
        for n in 0..100 {
            assert!(!cache.claim(&format!("{run}:{n}"), Duration::from_secs(60)).await.expect("claim"));
        }
        let nodes = cluster_nodes(&redis_cluster_url()).expect("the test cluster's URL");
        assert!(nodes.len() >= 3, "{nodes:?}");
        let mut holding = 0;
        for node in &nodes {
            let mut raw =
                Client::open(node.as_str()).expect("url").get_multiplexed_async_connection().await.expect("node");
            let (_, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(0)
                .arg("MATCH")
                .arg(format!("{CLAIM_PREFIX}{run}:*"))
                .arg("COUNT")
                .arg(100_000)
                .query_async(&mut raw)
                .await
                .expect("SCAN");
            holding += usize::from(!keys.is_empty());
        }
        assert_eq!(holding, nodes.len(), "every node holds some of the keys");
    }

    #[test]
    fn cluster_urls_name_their_nodes_with_the_credentials() {
        assert_eq!(
            cluster_nodes("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001").expect("valid"),
            ["redis://:pw@10.0.0.1:7000", "redis://:pw@10.0.0.2:7001"]
        );
        assert_eq!(cluster_nodes("rediss+cluster://h:7000/").expect("valid"), ["rediss://h:7000"]);
        assert!(cluster_nodes("redis+cluster://").is_err());
    }
}

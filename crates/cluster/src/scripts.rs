//! The Lua scripts run on Redis. Each is one atomic step, reads time only
//! from Redis's own `TIME` (never a node's clock, so skew between nodes
//! changes no decision) and touches one key, so it also runs on a Redis
//! cluster. Every key they write expires by itself.

use std::sync::LazyLock;

use redis::Script;

/// GCRA (generic cell rate algorithm), as redis-cell and KumoMTA's
/// throttle do it, in microseconds of server time.
/// `KEYS[1]` the theoretical arrival time (µs); `ARGV`: emission interval
/// T (µs), burst (cells allowed back to back, ≥ 1).
/// Returns `{allowed 0/1, retry_after_us}`.
pub(crate) static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat < now then tat = now end
local next_tat = tat + interval
local earliest = next_tat - interval * burst
if now < earliest then
  return {0, math.floor(earliest - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return {1, 0}
"#,
    )
});

/// Takes a connection slot: a lease in a sorted set scored by its expiry
/// (server ms). Expired leases — of a node that died — are dropped first.
/// `KEYS[1]` the set; `ARGV`: lease id, the limit for this caller, lease ms.
/// Returns `{granted 0/1, ms until the first lease expires when refused}`.
pub(crate) static LEASE_TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, limit, ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], id) then
  if redis.call('ZCARD', KEYS[1]) >= limit then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, math.max(1, tonumber(first[2]) - now)}
  end
end
redis.call('ZADD', KEYS[1], now + ms, id)
redis.call('PEXPIRE', KEYS[1], ms * 2)
return {1, 0}
"#,
    )
});

/// Renews a lease: it lives `ms` more. A lease that was gone (Redis
/// restarted empty) is put back — the connection it stands for is open.
/// `KEYS[1]` the set; `ARGV`: lease id, lease ms. Returns 1 if it was
/// there.
pub(crate) static LEASE_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local had = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
if had then return 1 else return 0 end
"#,
    )
});

/// The heartbeat of the cluster view: this node's record (expiring), the
/// index of live nodes, and the epoch — a value set once, which changes
/// only when Redis lost its data. `KEYS`: node record, node index, epoch;
/// `ARGV`: node id, ttl ms, record JSON, epoch candidate.
/// Returns `{epoch, live node ids}`.
pub(crate) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('SET', KEYS[3], ARGV[4], 'NX')
return {redis.call('GET', KEYS[3]), redis.call('ZRANGE', KEYS[2], 0, -1)}
"#,
    )
});

/// Writes one entry of a replicated table (a hash of JSON values, each
/// with the time `at` it was written), last writer wins: the write is kept
/// only if it is newer than what the hash holds, and then announced on the
/// change channel. `KEYS[1]` the hash; `ARGV`: field, value JSON, its
/// `at`, channel, change message. Returns `{1}` when written, else
/// `{0, the newer value}`.
pub(crate) static LWW_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local ok, v = pcall(cjson.decode, cur)
  if ok and type(v) == 'table' and tonumber(v['at']) and tonumber(v['at']) >= tonumber(ARGV[3]) then
    return {0, cur}
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1}
"#,
    )
});

//! Appends once per idempotency key, atomically across every instance: one Lua script checks the
//! key and appends (`XADD`) in one step on the Redis server.
//!
//! A channel's keys live beside its stream, in `<stream key>:once:ids` (a hash: key → event id)
//! and `<stream key>:once:order` (a sorted set: key → when it was first used, by the Redis
//! server's clock). Keys older than the window are dropped, and at most
//! [`MAX_KEYS_PER_CHANNEL`] are kept (the oldest go first), as in the in-memory store. Channel
//! names have no `:`, so these keys never collide with another channel's stream.

use std::time::Duration;

use ::redis::{Cmd, Value};

use super::{
    reply::{parse_added_id, StreamId, FIELD},
    shared::Shared,
};
use crate::store::{idempotency::MAX_KEYS_PER_CHANNEL, Published, StoreError};

/// `KEYS`: the stream, the ids hash, the order set. `ARGV`: the idempotency key, the frame
/// body, the window in ms, the most keys kept, `MAXLEN`, the `MINID` (or empty).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = string.format('(%d', now - tonumber(ARGV[3]))
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', cutoff)
for _, key in ipairs(expired) do
  redis.call('HDEL', KEYS[2], key)
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
end
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen then
  return {seen, 1}
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*', ARGV[7], ARGV[2])
if ARGV[6] ~= '' then
  redis.call('XTRIM', KEYS[1], 'MINID', ARGV[6])
end
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('ZADD', KEYS[3], now, ARGV[1])
local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
if extra > 0 then
  for _, key in ipairs(redis.call('ZRANGE', KEYS[3], 0, extra - 1)) do
    redis.call('HDEL', KEYS[2], key)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return {id, 0}
";

/// Appends the encoded `body` to `stream` unless idempotency `key` was used within `window`.
///
/// # Errors
/// As an append: [`StoreError::Timeout`] (the outcome is unknown; retrying with the same key is
/// safe), [`StoreError::Connection`], [`StoreError::WrongKeyType`] or [`StoreError::Backend`].
pub(super) async fn append_once(
    shared: &Shared,
    stream: &str,
    key: &str,
    window: Duration,
    body: &[u8],
) -> Result<Published, StoreError> {
    let retention = shared.retention;
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    let min_id =
        StreamId::min_for_age(retention.max_age).map_or_else(String::new, |id| id.to_string());
    let mut eval = Cmd::new();
    eval.arg("EVAL")
        .arg(SCRIPT)
        .arg(3)
        .arg(stream)
        .arg(format!("{stream}:once:ids"))
        .arg(format!("{stream}:once:order"))
        .arg(key)
        .arg(body)
        .arg(window_ms)
        .arg(MAX_KEYS_PER_CHANNEL)
        .arg(retention.max_events)
        .arg(min_id)
        .arg(FIELD);
    let mut connection = shared.commands.connection();
    let reply: Value = shared
        .commands
        .run("append", Some(stream), eval.query_async(&mut connection))
        .await?;
    let parsed = match reply {
        Value::Array(parts) => match parts.as_slice() {
            [id, Value::Int(duplicate)] => parse_added_id(id).map(|id| (id, *duplicate == 1)),
            _ => None,
        },
        _ => None,
    };
    let (id, duplicate) = parsed.ok_or_else(|| {
        StoreError::Backend("redis: the idempotent append answered something else".to_owned())
    })?;
    Ok(Published {
        id: id.event_id(),
        duplicate,
    })
}

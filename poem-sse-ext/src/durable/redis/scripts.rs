//! The Lua scripts: one per operation, each on the three keys of one stream (one slot), so that
//! every check and its write happen in one step on the Redis server.
//!
//! Every script gets `KEYS` = the stream's metadata hash, its entries (a Redis Stream) and its
//! producer table, and `ARGV[1]` = the stream's name, `ARGV[2]` = the channel that announces
//! changes. Every reply is an array: a status, then the name of a fork source whose reference
//! the caller must release (`''` for none: set when the script removed an expired fork), then
//! the status's values.
//!
//! An entry is one append at id `<start position>-1`, with field `d` (its bytes; for a JSON
//! stream its messages, joined) and, for JSON, field `n` (the messages' lengths, comma
//! separated). Numbers stay below 2^53 (the stream size cap), where Lua's doubles are exact;
//! they are written with `%.0f`, never by Lua's own number formatting.

/// What every script starts with: the keys, the clock, expiry, and entry helpers.
const PRELUDE: &str = r"
local meta, data, prod = KEYS[1], KEYS[2], KEYS[3]
local name, channel = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(n) return string.format('%.0f', n) end
local function gone()
  redis.call('DEL', meta, data, prod)
  redis.call('PUBLISH', channel, name)
end
-- The stream's life, expiring it first if due: 'live', 'soft' or false (none), and the source
-- of a fork that this call removed ('' for none).
local function life()
  local m = redis.call('HMGET', meta, 'life', 'deadline', 'exp', 'forks', 'src')
  if not m[1] then return false, '' end
  if m[1] == 'live' then
    local deadline, exp = tonumber(m[2]), tonumber(m[3])
    if (deadline and now >= deadline) or (exp and now >= exp) then
      if (tonumber(m[4]) or 0) > 0 then
        redis.call('HSET', meta, 'life', 'soft')
        redis.call('PUBLISH', channel, name)
        return 'soft', ''
      end
      gone()
      return false, m[5] or ''
    end
  end
  return m[1], ''
end
local function touch()
  local ttl = tonumber(redis.call('HGET', meta, 'ttl'))
  if ttl then redis.call('HSET', meta, 'deadline', int(now + ttl * 1000)) end
end
-- Positions and bytes of the entry ARGV[i] (data), ARGV[i + 1] (lengths, '' for bytes).
local function measure(d, n)
  if n == '' then return #d, #d end
  local count = 0
  for _ in string.gmatch(n, '%d+') do count = count + 1 end
  return count, #d + count
end
-- Appends that entry at `tail`; returns the new tail.
local function put(d, n, tail)
  local len = measure(d, n)
  if len == 0 then return tail end
  if n == '' then
    redis.call('XADD', data, int(tail) .. '-1', 'd', d)
  else
    redis.call('XADD', data, int(tail) .. '-1', 'd', d, 'n', n)
  end
  return tail + len
end
local function lengths(n)
  local out = {}
  for l in string.gmatch(n, '%d+') do out[#out + 1] = tonumber(l) end
  return out
end
local function start_of(id) return tonumber(string.match(id, '^(%d+)')) end
-- Calls `each(start, d, n)` for the entries from the one holding position `from`, until it
-- returns true.
local function scan(from, each)
  local first = redis.call('XREVRANGE', data, int(from) .. '-1', '-', 'COUNT', 1)
  local cursor = '-'
  if #first > 0 then cursor = first[1][1] end
  local inclusive = true
  while true do
    local batch = redis.call('XRANGE', data, (inclusive and '' or '(') .. cursor, '+', 'COUNT', 32)
    inclusive = false
    if #batch == 0 then return end
    for _, e in ipairs(batch) do
      cursor = e[1]
      local f = e[2]
      local d, n = f[2], f[4] or ''
      if each(start_of(e[1]), d, n) then return end
    end
  end
end
";

/// `ARGV[3..]`: the content type, its media type, the media type to compare an existing stream
/// with (`''`: the existing one's, for a fork without `Content-Type`), JSON (`0`/`1`), the TTL
/// and expiry time in force, the TTL and expiry time asked for, closed, the fork source, offset
/// and sub-offset asked for, the stream size cap, the number of inherited entries, the entries
/// (data, lengths), then the initial data (data, lengths) if any.
/// Replies `created`/`exists` + tail + closed + content type, or `conflict`/`toolarge`.
pub(super) const CREATE: &str = r"
local l, released = life()
if l == 'soft' then
  return {'conflict', released, 'this path belongs to a deleted stream that forks still use'}
end
if l == 'live' then
  local m = redis.call('HMGET', meta, 'media', 'cttl', 'cexp', 'closed', 'fsrc', 'foff', 'fsub', 'tail', 'ct')
  local want = ARGV[5]
  if want == '' then want = m[1] end
  if want ~= m[1] or ARGV[9] ~= m[2] or ARGV[10] ~= m[3] or ARGV[11] ~= m[4]
    or ARGV[12] ~= m[5] or ARGV[13] ~= m[6] or ARGV[14] ~= m[7] then
    return {'conflict', released, 'a stream exists at this path with another configuration (content type, TTL, expiry, closure or fork)'}
  end
  return {'exists', released, tonumber(m[8]), m[4], m[9]}
end
local inherited = tonumber(ARGV[16])
local payload = 17 + 2 * inherited
local size = 0
if ARGV[payload] then
  local _, s = measure(ARGV[payload], ARGV[payload + 1])
  size = s
  if size > tonumber(ARGV[15]) then return {'toolarge', released} end
end
local tail = 0
for i = 0, inherited - 1 do
  tail = put(ARGV[17 + 2 * i], ARGV[18 + 2 * i], tail)
end
if ARGV[payload] then tail = put(ARGV[payload], ARGV[payload + 1], tail) end
redis.call('DEL', prod)
redis.call('HSET', meta, 'life', 'live', 'ct', ARGV[3], 'media', ARGV[4], 'json', ARGV[6],
  'ttl', ARGV[7], 'exp', ARGV[8], 'cttl', ARGV[9], 'cexp', ARGV[10], 'closed', ARGV[11],
  'fsrc', ARGV[12], 'foff', ARGV[13], 'fsub', ARGV[14], 'src', ARGV[12], 'forks', 0,
  'tail', int(tail), 'size', int(size), 'seq', '', 'gen', t[1] .. '.' .. t[2], 'deadline', '')
touch()
return {'created', released, tail, ARGV[11], ARGV[3]}
";

/// `ARGV[3..]`: the request's media type (`''` for none), close (`0`/`1`), why its body is not
/// valid JSON (`''` when it is, or was not parsed), producer id (`''` for none), epoch and
/// sequence number, `Stream-Seq` (`''` for none), the stream size cap, the most producers, the
/// largest position, then the data (data, lengths) if any.
/// Replies `ok` + tail + closed + epoch + seq + fresh, or a refusal.
pub(super) const APPEND: &str = r#"
local l, released = life()
if not l then return {'notfound', released} end
if l == 'soft' then return {'gone', ''} end
local m = redis.call('HMGET', meta, 'closed', 'tail', 'media', 'json', 'ct', 'seq', 'size')
local closed, tail = m[1] == '1', tonumber(m[2])
local has = ARGV[13] ~= nil
if ARGV[5] ~= '' and m[4] == '1' then
  if closed then return {'closed', '', tail} end
  return {'bad', '', ARGV[5]}
end
local pid = ARGV[6]
local verdict, value, known = nil, nil, false
if pid ~= '' then
  local epoch, seq = tonumber(ARGV[7]), tonumber(ARGV[8])
  local st = redis.call('HGET', prod, pid)
  if not st then
    if seq == 0 then verdict = 'accept' else verdict, value = 'gap', 0 end
  else
    known = true
    local e, last = string.match(st, '^(%d+):(%d+)$')
    local en, lastn = tonumber(e), tonumber(last)
    if epoch < en then verdict, value = 'stale', e
    elseif epoch > en then
      if seq == 0 then verdict = 'accept' else verdict = 'needzero' end
    elseif seq <= lastn then verdict, value = 'dup', last
    elseif seq == lastn + 1 then verdict = 'accept'
    else verdict, value = 'gap', int(lastn + 1) end
  end
end
if closed then
  if verdict == 'dup' then
    touch()
    return {'ok', '', tail, 1, ARGV[7], value, 0}
  end
  if not has and ARGV[4] == '1' then
    touch()
    return {'ok', '', tail, 1, '', '', 0}
  end
  return {'closed', '', tail}
end
if has then
  if ARGV[3] == '' then return {'bad', '', 'an append needs a Content-Type header'} end
  if ARGV[3] ~= m[3] then
    return {'conflict', '', 'Content-Type ' .. ARGV[3] .. ' does not match the stream\'s ' .. m[5]}
  end
end
if verdict == 'accept' and not known and redis.call('HLEN', prod) >= tonumber(ARGV[11]) then
  return {'producers', ''}
elseif verdict == 'dup' then
  touch()
  return {'ok', '', tail, 0, ARGV[7], value, 0}
elseif verdict == 'stale' or verdict == 'gap' then
  return {verdict, '', value}
elseif verdict == 'needzero' then
  return {verdict, ''}
end
if ARGV[9] ~= '' and m[6] ~= '' then
  local a, b = ARGV[9], m[6]
  local greater = #a > #b
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then greater = x > y; break end
  end
  if not greater then
    return {'conflict', '', 'Stream-Seq \"' .. a .. '\" is not greater than the last one, \"' .. b .. '\"'}
  end
end
if has then
  local len, size = measure(ARGV[13], ARGV[14])
  local total = tonumber(m[7]) + size
  if total > tonumber(ARGV[10]) or tail + len > tonumber(ARGV[12]) then
    return {'toolarge', ''}
  end
  tail = put(ARGV[13], ARGV[14], tail)
  redis.call('HSET', meta, 'tail', int(tail), 'size', int(total))
end
if ARGV[9] ~= '' then redis.call('HSET', meta, 'seq', ARGV[9]) end
if pid ~= '' then redis.call('HSET', prod, pid, ARGV[7] .. ':' .. ARGV[8]) end
if ARGV[4] == '1' then
  redis.call('HSET', meta, 'closed', '1')
  closed = true
end
touch()
if has or closed then redis.call('PUBLISH', channel, name) end
if pid == '' then return {'ok', '', tail, closed and 1 or 0, '', '', has and 1 or 0} end
return {'ok', '', tail, closed and 1 or 0, ARGV[7], ARGV[8], has and 1 or 0}
"#;

/// `ARGV[3..]`: the position (`now` for the tail), the most bytes, renew the TTL (`0`/`1`).
/// Replies `ok` + tail + closed + JSON + content type + TTL + expiry + generation + the position
/// read from + the position after the data, then the data (one string; one per message for
/// JSON).
pub(super) const READ: &str = r"
local l, released = life()
if not l then return {'notfound', released} end
if l == 'soft' then return {'gone', ''} end
if ARGV[5] == '1' then touch() end
local m = redis.call('HMGET', meta, 'tail', 'closed', 'json', 'ct', 'ttl', 'exp', 'gen')
local tail, json = tonumber(m[1]), m[3] == '1'
local from = tail
if ARGV[3] ~= 'now' then from = tonumber(ARGV[3]) end
local out = {'ok', '', tail, m[2], m[3], m[4], m[5] or '', m[6] or '', m[7] or '', from, from}
local budget = tonumber(ARGV[4])
if from >= tail or budget <= 0 then return out end
local parts, nxt = {}, from
scan(from, function(start, d, n)
  local skip = nxt - start
  if n ~= '' then
    local lens = lengths(n)
    local pos = 1
    for j = 1, skip do pos = pos + lens[j] end
    local used, count = 0, 0
    for j = skip + 1, #lens do
      if count > 0 and used + lens[j] + 1 > budget then break end
      parts[#parts + 1] = string.sub(d, pos, pos + lens[j] - 1)
      pos = pos + lens[j]
      used = used + lens[j] + 1
      count = count + 1
    end
    budget = budget - used
    nxt = nxt + count
    return budget <= 0 or count < #lens - skip
  end
  local take = math.min(#d - skip, budget)
  parts[#parts + 1] = string.sub(d, skip + 1, skip + take)
  budget = budget - take
  nxt = nxt + take
  return budget <= 0 or take < #d - skip
end)
out[11] = nxt
if json then
  for _, p in ipairs(parts) do out[#out + 1] = p end
else
  out[12] = table.concat(parts)
end
return out
";

/// Replies `ok` + the fork source to release when the stream was removed.
pub(super) const DELETE: &str = r"
local l, released = life()
if not l then return {'notfound', released} end
if l == 'soft' then return {'gone', ''} end
if (tonumber(redis.call('HGET', meta, 'forks')) or 0) > 0 then
  redis.call('HSET', meta, 'life', 'soft')
  redis.call('PUBLISH', channel, name)
  return {'ok', ''}
end
local src = redis.call('HGET', meta, 'src') or ''
gone()
return {'ok', src}
";

/// A fork of this stream went (or was never made): one reference less; a soft-deleted stream
/// that no fork uses now is removed. Replies `ok` + the source to release next.
pub(super) const RELEASE: &str = r"
if redis.call('EXISTS', meta) == 0 then return {'ok', ''} end
local forks = redis.call('HINCRBY', meta, 'forks', -1)
if forks < 0 then
  redis.call('HSET', meta, 'forks', 0)
  forks = 0
end
local l, released = life()
if l == 'soft' and forks == 0 then
  local src = redis.call('HGET', meta, 'src') or ''
  gone()
  return {'ok', src}
end
return {'ok', released}
";

/// `ARGV[3..]`: the fork offset (`''`: the tail), sub-offset, the media type asked for (`''`
/// for none) and its content type. Takes a reference and replies `ok` + content type + JSON +
/// TTL + expiry + the fork's tail, then the entries up to it (data, lengths).
pub(super) const FORK: &str = r"
local l, released = life()
if not l then return {'notfound', released} end
if l == 'soft' then return {'conflict', '', 'the source stream was deleted: it can not be forked'} end
local m = redis.call('HMGET', meta, 'tail', 'ct', 'media', 'json', 'ttl', 'exp')
if ARGV[5] ~= '' and ARGV[5] ~= m[3] then
  return {'conflict', '', 'Content-Type ' .. ARGV[6] .. ' does not match the source stream\'s ' .. m[2]}
end
local tail = tonumber(m[1])
local at = tail
if ARGV[3] ~= '' then at = tonumber(ARGV[3]) end
if at > tail then return {'bad', '', 'Stream-Fork-Offset is beyond the source stream\'s tail'} end
local sub = tonumber(ARGV[4])
local stop = at
if sub > 0 then
  local ok = false
  if at < tail then
    local e = redis.call('XREVRANGE', data, int(at) .. '-1', '-', 'COUNT', 1)[1]
    local len = measure(e[2][2], e[2][4] or '')
    ok = at + sub <= start_of(e[1]) + len
  end
  if not ok then
    return {'bad', '', 'Stream-Fork-Sub-Offset goes past the end of the append at Stream-Fork-Offset'}
  end
  stop = at + sub
end
redis.call('HINCRBY', meta, 'forks', 1)
local out = {'ok', '', m[2], m[4], m[5] or '', m[6] or '', stop}
if stop == 0 then return out end
scan(0, function(start, d, n)
  local len = measure(d, n)
  local take = math.min(len, stop - start)
  if n == '' then
    out[#out + 1] = string.sub(d, 1, take)
    out[#out + 1] = ''
  else
    local lens, kept, bytes = lengths(n), {}, 0
    for j = 1, take do
      kept[j] = int(lens[j])
      bytes = bytes + lens[j]
    end
    out[#out + 1] = string.sub(d, 1, bytes)
    out[#out + 1] = table.concat(kept, ',')
  end
  return start + len >= stop
end)
return out
";

/// The full text of a script: the prelude, then `body`.
pub(super) fn full(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

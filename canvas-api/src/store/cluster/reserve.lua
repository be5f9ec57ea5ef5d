-- A user's part of placements on a Redis Cluster, on the user's slot: for
-- each of the user's writes in a batch, in order, the ban, the protection
-- (decided by the caller from the board's protections), the cooldown and
-- the pixel pool, in the order place.lua checks them. A write that passes
-- takes its cooldown and its pool share at once, so the user's next write
-- (in this batch, or from another replica) meets them, and enters the
-- user's index of placed pixels (what "undo a user" reads) here, on the
-- user's slot, rather than in a call of its own after the write. The pixel
-- itself is written afterwards on its chunk's slot; a write that does not
-- get there gives all of it back through refund.lua.
--
-- KEYS[1] ban, KEYS[2] cooldown, KEYS[3] pool, KEYS[4] the user's pixels
-- ARGV[1] a token the cooldowns set here hold (refund.lua deletes only a
-- cooldown that still holds it), ARGV[2] the user's pixels kept; then five
-- per write i (0-based) at 2 + 5i + : 1 protected (1 or 0), 2 cooldown ms,
-- 3 pool size (0: none), 4 pool refill ms, 5 pixel index.
-- Returns one reply per write: {1, previous score of the pixel in the
-- index, -1 for none} reserved; {0, ms} cooldown; {2, ms} pool empty; {4}
-- banned; {5} protected.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local banned = redis.call('EXISTS', KEYS[1]) == 1

local function reserve(a)
  if banned then
    return {4}
  end
  if ARGV[a + 1] == '1' then
    return {5}
  end
  local cooldown = tonumber(ARGV[a + 2])
  if cooldown > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
    local ttl = redis.call('PTTL', KEYS[2])
    if ttl < 1 then ttl = 1 end
    return {0, ttl}
  end
  local size = tonumber(ARGV[a + 3])
  local tat
  if size > 0 then
    -- GCRA, as in place.lua.
    local refill = tonumber(ARGV[a + 4])
    tat = tonumber(redis.call('GET', KEYS[3]) or '0')
    if tat < now then tat = now end
    tat = tat + refill
    local allowed_at = tat - size * refill
    if allowed_at > now then
      return {2, math.max(allowed_at - now, 1)}
    end
  end
  if cooldown > 0 then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', cooldown)
  end
  if tat then
    redis.call('SET', KEYS[3], string.format('%d', tat), 'PX', math.max(tat - now, 1))
  end
  local index = ARGV[a + 5]
  local previous = tonumber(redis.call('ZSCORE', KEYS[4], index) or '-1')
  redis.call('ZADD', KEYS[4], now, index)
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[2]) + 1))
  return {1, previous}
end

local replies = {}
for i = 0, (#ARGV - 2) / 5 - 1 do
  replies[i + 1] = reserve(2 + 5 * i)
end
return replies

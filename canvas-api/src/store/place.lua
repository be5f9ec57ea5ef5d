-- Pixel writes, one after another in one atomic call (one for a single
-- placement, up to a gateway's batch): for each, ban, protection, cooldown,
-- pixel-pool and per-IP checks, then seq, replay-log entry, board byte
-- range, pixel metadata, pixel history, the user's pixel index and the
-- announcement. Each placement is decided on its own (a refused one changes
-- nothing and does not affect the others) and sees the writes of the ones
-- before it (a user's second pixel in a batch meets the first one's
-- cooldown). Every refusal is decided before that placement's first write,
-- because Redis does not roll a script back.
--
-- KEYS[1] seq, KEYS[2] pixel meta, KEYS[3] log, KEYS[4] protections;
-- then seven keys per placement i (0-based) at 4 + 7i + : 1 cooldown,
-- 2 ban, 3 pixel history, 4 user pixels, 5 user pool, 6 IP pool, 7 the
-- key holding the pixel's bytes (the board key, or its chunk's key on a
-- board kept by chunks: the caller decides).
-- ARGV[1] log max length, ARGV[2] history length, ARGV[3] user pixels kept,
-- ARGV[4] the channel stored pixels are announced on; then 13 arguments
-- per placement i at 4 + 13i + : 1 byte offset in key 7, 2 three stored (inverted)
-- bytes, 3 x, 4 y, 5 color "#RRGGBB", 6 username, 7 cooldown ms, 8 pixel
-- index, 9 pool size (0: none), 10 pool refill ms, 11 IP pool size (0:
-- none), 12 IP pool refill ms, 13 the event's JSON up to its timestamp
-- (encoded by the caller with the protocol's types; this script appends
-- `<ts>,"seq":<seq>}`).
--
-- Returns one reply per placement, in order: {1, seq, ts, announced (1 or
-- 0)} stored; {0, ms} cooldown; {2, ms} pool empty; {3, ms} IP limited;
-- {4} banned; {5} protected.
--
-- Storing and announcing are one step: each event is published here, right
-- after its writes, so the channel carries events in seq order and nothing
-- is announced that was not stored. A failed PUBLISH (pcall) does not undo
-- the write: receivers find the seq gap and read it from the log.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tss = string.format('%d', now)
local log_len = ARGV[1]
local history_len = tonumber(ARGV[2])
local user_pixels_len = tonumber(ARGV[3])
local channel = ARGV[4]

-- Read once for the whole call: nothing here changes them.
local protections = {}
for _, p in ipairs(redis.call('HVALS', KEYS[4])) do
  protections[#protections + 1] = cjson.decode(p)
end

-- GCRA: the key holds the time the pool is full again ("theoretical
-- arrival time"); one more pixel is allowed while that stays within
-- size * refill of now. Returns the new TAT, or nil and the wait.
local function gcra(key, size, refill)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + refill
  local allowed_at = new_tat - size * refill
  if allowed_at > now then
    return nil, allowed_at - now
  end
  return new_tat, 0
end

local function place(k, a)
  if redis.call('EXISTS', KEYS[k + 2]) == 1 then
    return {4}
  end
  local x = tonumber(ARGV[a + 3])
  local y = tonumber(ARGV[a + 4])
  for _, r in ipairs(protections) do
    if x >= r.x0 and x <= r.x1 and y >= r.y0 and y <= r.y1 then
      return {5}
    end
  end
  local cooldown = tonumber(ARGV[a + 7])
  if cooldown > 0 and redis.call('EXISTS', KEYS[k + 1]) == 1 then
    local ttl = redis.call('PTTL', KEYS[k + 1])
    if ttl < 1 then ttl = 1 end
    return {0, ttl}
  end
  local pool_size = tonumber(ARGV[a + 9])
  local pool_tat
  if pool_size > 0 then
    local wait
    pool_tat, wait = gcra(KEYS[k + 5], pool_size, tonumber(ARGV[a + 10]))
    if not pool_tat then
      return {2, math.max(wait, 1)}
    end
  end
  local ip_size = tonumber(ARGV[a + 11])
  local ip_tat
  if ip_size > 0 then
    local wait
    ip_tat, wait = gcra(KEYS[k + 6], ip_size, tonumber(ARGV[a + 12]))
    if not ip_tat then
      return {3, math.max(wait, 1)}
    end
  end

  local seq = tonumber(redis.call('GET', KEYS[1]) or '0') + 1
  local seqs = string.format('%d', seq)
  local color = ARGV[a + 5]
  local username = ARGV[a + 6]
  local index = ARGV[a + 8]
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', log_len, seqs .. '-0',
    'x', ARGV[a + 3], 'y', ARGV[a + 4], 'c', color, 'u', username, 't', tss)
  redis.call('SET', KEYS[1], seqs)
  redis.call('SETRANGE', KEYS[k + 7], ARGV[a + 1], ARGV[a + 2])
  local meta = seqs .. ':' .. tss .. ':' .. color .. ':' .. username
  redis.call('HSET', KEYS[2], index, meta)
  redis.call('LPUSH', KEYS[k + 3], meta)
  redis.call('LTRIM', KEYS[k + 3], 0, history_len - 1)
  redis.call('ZADD', KEYS[k + 4], now, index)
  redis.call('ZREMRANGEBYRANK', KEYS[k + 4], 0, -(user_pixels_len + 1))
  if cooldown > 0 then
    redis.call('SET', KEYS[k + 1], '1', 'PX', cooldown)
  end
  if pool_tat then
    redis.call('SET', KEYS[k + 5], string.format('%d', pool_tat), 'PX', math.max(pool_tat - now, 1))
  end
  if ip_tat then
    redis.call('SET', KEYS[k + 6], string.format('%d', ip_tat), 'PX', math.max(ip_tat - now, 1))
  end
  local announced = 0
  if type(redis.pcall('PUBLISH', channel, ARGV[a + 13] .. tss .. ',"seq":' .. seqs .. '}')) == 'number' then
    announced = 1
  end
  return {1, seq, now, announced}
end

local replies = {}
local count = (#ARGV - 4) / 13
for i = 0, count - 1 do
  replies[i + 1] = place(4 + 7 * i, 4 + 13 * i)
end
return replies

-- One pixel write, atomically: ban, protection, cooldown, pixel-pool and
-- per-IP checks, then seq, replay-log entry, board byte range, pixel
-- metadata, pixel history and the user's pixel index. Every refusal is
-- decided before the first write, because Redis does not roll a script back.
--
-- KEYS[1] board, KEYS[2] seq, KEYS[3] pixel meta, KEYS[4] log,
-- KEYS[5] cooldown, KEYS[6] ban, KEYS[7] protections, KEYS[8] pixel history,
-- KEYS[9] user pixels, KEYS[10] user pool, KEYS[11] IP pool
-- ARGV[1] byte offset, ARGV[2] 3 stored (inverted) bytes, ARGV[3] x, ARGV[4] y,
-- ARGV[5] color "#RRGGBB", ARGV[6] username, ARGV[7] cooldown ms,
-- ARGV[8] log max length, ARGV[9] pixel index, ARGV[10] history length,
-- ARGV[11] user pixels kept, ARGV[12] pool size (0: none),
-- ARGV[13] pool refill ms, ARGV[14] IP pool size (0: none), ARGV[15] IP
-- pool refill ms, ARGV[16] the channel stored pixels are announced on,
-- ARGV[17] the event's JSON up to its timestamp (encoded by the caller
-- with the protocol's types; this script appends `<ts>,"seq":<seq>}`)
--
-- Returns {1, seq, ts, announced (1 or 0)} stored; {0, ms} cooldown;
-- {2, ms} pool empty; {3, ms} IP limited; {4} banned; {5} protected.
--
-- Storing and announcing are one step: the event is published here, after
-- every write, so the channel carries events in seq order and nothing is
-- announced that was not stored. A failed PUBLISH (pcall) does not undo
-- the write: receivers find the seq gap and read it from the log.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', KEYS[6]) == 1 then
  return {4}
end
local x = tonumber(ARGV[3])
local y = tonumber(ARGV[4])
for _, p in ipairs(redis.call('HVALS', KEYS[7])) do
  local r = cjson.decode(p)
  if x >= r.x0 and x <= r.x1 and y >= r.y0 and y <= r.y1 then
    return {5}
  end
end
local cooldown = tonumber(ARGV[7])
if cooldown > 0 and redis.call('EXISTS', KEYS[5]) == 1 then
  local ttl = redis.call('PTTL', KEYS[5])
  if ttl < 1 then ttl = 1 end
  return {0, ttl}
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
local pool_size = tonumber(ARGV[12])
local pool_tat
if pool_size > 0 then
  local wait
  pool_tat, wait = gcra(KEYS[10], pool_size, tonumber(ARGV[13]))
  if not pool_tat then
    return {2, math.max(wait, 1)}
  end
end
local ip_size = tonumber(ARGV[14])
local ip_tat
if ip_size > 0 then
  local wait
  ip_tat, wait = gcra(KEYS[11], ip_size, tonumber(ARGV[15]))
  if not ip_tat then
    return {3, math.max(wait, 1)}
  end
end

local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = last + 1
local ts = now
local seqs = string.format('%d', seq)
local tss = string.format('%d', ts)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], seqs .. '-0',
  'x', ARGV[3], 'y', ARGV[4], 'c', ARGV[5], 'u', ARGV[6], 't', tss)
redis.call('SET', KEYS[2], seqs)
redis.call('SETRANGE', KEYS[1], ARGV[1], ARGV[2])
local meta = seqs .. ':' .. tss .. ':' .. ARGV[5] .. ':' .. ARGV[6]
redis.call('HSET', KEYS[3], ARGV[9], meta)
redis.call('LPUSH', KEYS[8], meta)
redis.call('LTRIM', KEYS[8], 0, tonumber(ARGV[10]) - 1)
redis.call('ZADD', KEYS[9], ts, ARGV[9])
redis.call('ZREMRANGEBYRANK', KEYS[9], 0, -(tonumber(ARGV[11]) + 1))
if cooldown > 0 then
  redis.call('SET', KEYS[5], '1', 'PX', cooldown)
end
if pool_tat then
  redis.call('SET', KEYS[10], string.format('%d', pool_tat), 'PX', math.max(pool_tat - now, 1))
end
if ip_tat then
  redis.call('SET', KEYS[11], string.format('%d', ip_tat), 'PX', math.max(ip_tat - now, 1))
end
local announced = 0
if type(redis.pcall('PUBLISH', ARGV[16], ARGV[17] .. tss .. ',"seq":' .. seqs .. '}')) == 'number' then
  announced = 1
end
return {1, seq, ts, announced}

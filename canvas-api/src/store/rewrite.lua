-- Moderation writes, atomically: each pixel is set only if its last write
-- is still the one the plan was made from (compare-and-set on its seq; 0
-- when nobody placed since the board began or was cleared), so a placement
-- made meanwhile stays. Each write is an ordinary one: seq, replay-log
-- entry, board, metadata, history.
--
-- On a Redis Cluster the same script runs per chunk, on the chunk's keys
-- and seq (cluster/mod.rs), and also announces on the chunk's channel.
--
-- KEYS[1] seq, KEYS[2] pixel meta, KEYS[3] log, then per write i (1-based)
-- KEYS[2 + 2i] its history and KEYS[3 + 2i] the key holding its bytes (the
-- board key, or its chunk's key on a board kept by chunks)
-- ARGV[1] log max length, ARGV[2] username, ARGV[3] history length,
-- ARGV[4] the channel stored pixels are announced on, ARGV[5] the sharded
-- channel they are also announced on ('' for none), then per write 7
-- values: pixel index (its field in KEYS[2]), x, y, color "#RRGGBB",
-- expected seq, the event's JSON up to its timestamp (as in place.lua),
-- and the pixel's byte offset in its key
--
-- Returns {ts, announcements failed, seq_1, ..., seq_n}, seq_i 0 for a
-- write skipped. Each write is published as it is stored, as placements
-- are.
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tss = string.format('%d', ts)
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {ts, 0}
local n = (#ARGV - 5) / 7
for i = 1, n do
  local b = 5 + (i - 1) * 7
  local index = ARGV[b + 1]
  local color = ARGV[b + 4]
  local current = redis.call('HGET', KEYS[2], index)
  local current_seq = 0
  if current then
    current_seq = tonumber(string.match(current, '^(%d+)'))
  end
  if current_seq == tonumber(ARGV[b + 5]) then
    seq = seq + 1
    local seqs = string.format('%d', seq)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], seqs .. '-0',
      'x', ARGV[b + 2], 'y', ARGV[b + 3], 'c', color, 'u', ARGV[2], 't', tss)
    local r = tonumber(string.sub(color, 2, 3), 16)
    local g = tonumber(string.sub(color, 4, 5), 16)
    local bl = tonumber(string.sub(color, 6, 7), 16)
    redis.call('SETRANGE', KEYS[3 + 2 * i], ARGV[b + 7],
      string.char(255 - r, 255 - g, 255 - bl))
    local meta = seqs .. ':' .. tss .. ':' .. color .. ':' .. ARGV[2]
    redis.call('HSET', KEYS[2], index, meta)
    redis.call('LPUSH', KEYS[2 + 2 * i], meta)
    redis.call('LTRIM', KEYS[2 + 2 * i], 0, tonumber(ARGV[3]) - 1)
    local event = ARGV[b + 6] .. tss .. ',"seq":' .. seqs .. '}'
    local failed = type(redis.pcall('PUBLISH', ARGV[4], event)) ~= 'number'
    if ARGV[5] ~= '' and type(redis.pcall('SPUBLISH', ARGV[5], event)) ~= 'number' then
      failed = true
    end
    if failed then
      out[2] = out[2] + 1
    end
    out[#out + 1] = seq
  else
    out[#out + 1] = 0
  end
end
redis.call('SET', KEYS[1], string.format('%d', seq))
return out

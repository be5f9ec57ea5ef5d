-- One chunk's part of placements on a Redis Cluster, on the chunk's slot:
-- the writes whose user and IP already passed (reserve.lua, ip_pool.lua),
-- in order, each with the chunk's next seq, its replay-log entry, its
-- bytes, its metadata and history, and its announcement. Nothing here can
-- refuse a write, so nothing needs undoing.
--
-- The chunk's seq counts under the chunk's own epoch: on a cluster each
-- master can lose its data on its own, and a chunk whose seq started over
-- must be recognisably new to a client holding its old seq.
--
-- KEYS[1] the chunk's bytes, KEYS[2] seq, KEYS[3] log, KEYS[4] pixel meta,
-- KEYS[5] epoch; then KEYS[5 + i] the history of write i (1-based).
-- ARGV[1] log max length, ARGV[2] history length, ARGV[3] the whole-board
-- channel ('' to publish on the chunk's channel only), ARGV[4] the chunk's
-- shard channel, ARGV[5] an epoch in case the chunk has none; then seven
-- per write i (1-based) at 5 + 7(i - 1) + : 1 offset of its bytes in
-- KEYS[1], 2 its three stored (inverted) bytes, 3 x, 4 y, 5 color
-- "#RRGGBB", 6 username, 7 the event's JSON up to its timestamp (this
-- script appends `<ts>,"seq":<seq>}`).
-- Returns one reply per write: {seq, ts, announced (1 or 0)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tss = string.format('%d', now)
local history_len = tonumber(ARGV[2])
redis.call('SET', KEYS[5], ARGV[5], 'NX')

local replies = {}
for i = 1, #KEYS - 5 do
  local a = 5 + 7 * (i - 1)
  local offset = tonumber(ARGV[a + 1])
  local color = ARGV[a + 5]
  local username = ARGV[a + 6]
  local seq = redis.call('INCR', KEYS[2])
  local seqs = string.format('%d', seq)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], seqs .. '-0',
    'x', ARGV[a + 3], 'y', ARGV[a + 4], 'c', color, 'u', username, 't', tss)
  redis.call('SETRANGE', KEYS[1], offset, ARGV[a + 2])
  local meta = seqs .. ':' .. tss .. ':' .. color .. ':' .. username
  redis.call('HSET', KEYS[4], string.format('%d', offset / 3), meta)
  redis.call('LPUSH', KEYS[5 + i], meta)
  redis.call('LTRIM', KEYS[5 + i], 0, history_len - 1)
  local event = ARGV[a + 7] .. tss .. ',"seq":' .. seqs .. '}'
  local announced = 1
  if type(redis.pcall('SPUBLISH', ARGV[4], event)) ~= 'number' then
    announced = 0
  end
  if ARGV[3] ~= '' and type(redis.pcall('PUBLISH', ARGV[3], event)) ~= 'number' then
    announced = 0
  end
  replies[i] = {seq, now, announced}
end
return replies

-- One pixel write, atomically: cooldown check, seq, replay-log entry, board
-- byte range and pixel metadata. Every failure that can happen is checked
-- before the first write, because Redis does not roll a script back.
--
-- KEYS[1] board, KEYS[2] seq, KEYS[3] pixel meta, KEYS[4] log, KEYS[5] cooldown
-- ARGV[1] byte offset, ARGV[2] 3 stored (inverted) bytes, ARGV[3] x, ARGV[4] y,
-- ARGV[5] color "#RRGGBB", ARGV[6] username, ARGV[7] cooldown ms,
-- ARGV[8] log max length, ARGV[9] pixel index
local cooldown = tonumber(ARGV[7])
if cooldown > 0 and redis.call('EXISTS', KEYS[5]) == 1 then
  local ttl = redis.call('PTTL', KEYS[5])
  if ttl < 1 then ttl = 1 end
  return {0, ttl}
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = last + 1
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seqs = string.format('%d', seq)
local tss = string.format('%d', ts)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], seqs .. '-0',
  'x', ARGV[3], 'y', ARGV[4], 'c', ARGV[5], 'u', ARGV[6], 't', tss)
redis.call('SET', KEYS[2], seqs)
redis.call('SETRANGE', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[9], seqs .. ':' .. tss .. ':' .. ARGV[5] .. ':' .. ARGV[6])
if cooldown > 0 then
  redis.call('SET', KEYS[5], '1', 'PX', cooldown)
end
return {1, seq, ts}

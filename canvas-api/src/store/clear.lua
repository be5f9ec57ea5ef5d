-- Clears the board as one seq: board, metadata and replay log go, so the
-- log cannot serve anything across the clear and every receiver that was
-- behind refetches the board. Histories stay (a rollback to before the
-- clear can restore it); the clear's seq and time are kept to read them.
--
-- KEYS[1] board, KEYS[2] seq, KEYS[3] pixel meta, KEYS[4] log, KEYS[5] cleared
-- Returns {seq, ts}.
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
redis.call('SET', KEYS[2], string.format('%d', seq))
redis.call('SET', KEYS[5], string.format('%d:%d', seq, ts))
return {seq, ts}

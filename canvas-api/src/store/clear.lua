-- Clears the board as one seq: board, metadata and replay log go, so the
-- log cannot serve anything across the clear and every receiver that was
-- behind refetches the board. Histories stay (a rollback to before the
-- clear can restore it); the clear's seq and time are kept to read them.
--
-- KEYS[1] seq, KEYS[2] pixel meta, KEYS[3] log, KEYS[4] cleared, then
-- every key that may hold the board's pixels (the one board key, or every
-- chunk key of a board kept by chunks: up to 65,536)
-- Returns {seq, ts}.
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = tonumber(redis.call('GET', KEYS[1]) or '0') + 1
redis.call('DEL', KEYS[2], KEYS[3])
-- In slices: unpack of 65,536 values would overflow Lua's stack.
local slice = 1000
for first = 5, #KEYS, slice do
  redis.call('DEL', unpack(KEYS, first, math.min(first + slice - 1, #KEYS)))
end
redis.call('SET', KEYS[1], string.format('%d', seq))
redis.call('SET', KEYS[4], string.format('%d:%d', seq, ts))
return {seq, ts}

-- Gives back what reserve.lua took for writes that were not stored (their
-- IP was over its limit, or their chunk's write failed): the cooldown, if
-- it is still the one this batch set, one pool share per write, and each
-- write's entry in the user's index (back to its previous score, or out).
--
-- KEYS[1] cooldown, KEYS[2] pool, KEYS[3] the user's pixels
-- ARGV[1] the token reserve.lua's cooldown holds; then three per write
-- given back: pool refill ms (0: the write took no pool share), pixel
-- index, its previous score in the index (-1: none).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
for i = 2, #ARGV, 3 do
  local previous = tonumber(ARGV[i + 2])
  if previous < 0 then
    redis.call('ZREM', KEYS[3], ARGV[i + 1])
  else
    redis.call('ZADD', KEYS[3], previous, ARGV[i + 1])
  end
  local refill = tonumber(ARGV[i])
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if refill > 0 and tat > 0 then
    tat = tat - refill
    if tat <= now then
      redis.call('DEL', KEYS[2])
    else
      redis.call('SET', KEYS[2], string.format('%d', tat), 'PX', tat - now)
    end
  end
end
return 1

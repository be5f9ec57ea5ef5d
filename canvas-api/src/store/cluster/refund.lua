-- Gives back what reserve.lua took for writes that were not stored (their
-- IP was over its limit, or their chunk's write failed): the cooldown, if
-- it is still the one this batch set, and one pool share per write.
--
-- KEYS[1] cooldown, KEYS[2] pool
-- ARGV[1] the token reserve.lua's cooldown holds; then one pool refill ms
-- per write given back (0: the write took no pool share).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
for i = 2, #ARGV do
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

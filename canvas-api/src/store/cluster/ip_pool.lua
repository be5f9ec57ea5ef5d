-- An IP's part of placements on a Redis Cluster, on the IP's slot: its
-- pixel pool (GCRA, as in place.lua), for each of its writes in order; a
-- write that passes takes its share.
--
-- KEYS[1] the IP's pool
-- ARGV: two per write i (0-based) at 2i + : 1 pool size, 2 refill ms.
-- Returns one reply per write: {1} allowed; {3, ms} limited.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local replies = {}
for i = 0, #ARGV / 2 - 1 do
  local size = tonumber(ARGV[2 * i + 1])
  local refill = tonumber(ARGV[2 * i + 2])
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  tat = tat + refill
  local allowed_at = tat - size * refill
  if allowed_at > now then
    replies[i + 1] = {3, math.max(allowed_at - now, 1)}
  else
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.max(tat - now, 1))
    replies[i + 1] = {1}
  end
end
return replies

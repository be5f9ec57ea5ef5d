-- Read-only: the replay-log entries after a seq, with the seq they were read
-- at, consistently.
--
-- KEYS[1] seq, KEYS[2] log
-- ARGV[1] since, ARGV[2] limit
-- Returns {latest, 1, entries} or {latest, 0} when the log cannot serve it.
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[1])
if since == latest then
  return {latest, 1, {}}
end
if since > latest then
  return {latest, 0}
end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first == 0 then
  return {latest, 0}
end
local oldest = tonumber(string.match(first[1][1], '^(%d+)'))
if oldest > since + 1 then
  return {latest, 0}
end
local start = string.format('%d-0', since + 1)
return {latest, 1, redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', ARGV[2])}

-- The replay-log entries after a seq, with the seq they were read at and the
-- board's epoch, consistently. Its one write sets the epoch when there is
-- none (a new board, or a Redis that lost its data), so the epoch a caller
-- gets was current when its seq was.
--
-- KEYS[1] seq, KEYS[2] log, KEYS[3] epoch
-- ARGV[1] since, ARGV[2] limit, ARGV[3] a new epoch in case there is none,
-- ARGV[4] the epoch the caller's `since` belongs to ('' for any)
-- Returns {latest, 1, epoch, entries} or {latest, 0, epoch} when the log
-- cannot serve it.
redis.call('SET', KEYS[3], ARGV[3], 'NX')
local epoch = redis.call('GET', KEYS[3])
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[1])
if ARGV[4] ~= '' and ARGV[4] ~= epoch then
  return {latest, 0, epoch}
end
if since == latest then
  return {latest, 1, epoch, {}}
end
if since > latest then
  return {latest, 0, epoch}
end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first == 0 then
  return {latest, 0, epoch}
end
local oldest = tonumber(string.match(first[1][1], '^(%d+)'))
if oldest > since + 1 then
  return {latest, 0, epoch}
end
local start = string.format('%d-0', since + 1)
return {latest, 1, epoch, redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', ARGV[2])}

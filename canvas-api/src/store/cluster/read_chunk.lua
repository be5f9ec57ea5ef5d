-- One chunk's bytes with its seq and epoch, read in one step on the
-- chunk's slot; sets the chunk's epoch when it has none, like write.lua.
--
-- KEYS[1] the chunk's bytes, KEYS[2] seq, KEYS[3] epoch
-- ARGV[1] an epoch in case the chunk has none
-- Returns {seq, epoch, bytes ('' when never written)}.
redis.call('SET', KEYS[3], ARGV[1], 'NX')
return {
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  redis.call('GET', KEYS[3]),
  redis.call('GET', KEYS[1]) or '',
}

-- Counts a failed request to a host; enough failures in a row open its breaker.
-- KEYS[1] consecutive failures  KEYS[2] breaker  KEYS[3] open breakers (host -> until ms)
-- ARGV[1] failures that open it  ARGV[2] how long it stays open (ms)
-- ARGV[3] how long a failure is remembered (ms)  ARGV[4] now ms  ARGV[5] host
-- Returns 1 when this failure opened the breaker.
local failures = redis.call('incr', KEYS[1])
redis.call('pexpire', KEYS[1], ARGV[3])
if failures >= tonumber(ARGV[1]) then
  redis.call('set', KEYS[2], 1, 'PX', ARGV[2])
  redis.call('zadd', KEYS[3], tonumber(ARGV[4]) + tonumber(ARGV[2]), ARGV[5])
  redis.call('zremrangebyscore', KEYS[3], '-inf', ARGV[4])
  -- Every entry ends within one open period of now, so the set may go with the last of them.
  redis.call('pexpire', KEYS[3], ARGV[2])
  -- After the open period one more failure reopens it at once (the host is still down).
  redis.call('set', KEYS[1], tonumber(ARGV[1]) - 1, 'PX', ARGV[3])
  return 1
end
return 0

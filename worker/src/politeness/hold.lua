-- Holds a host until a time (a Retry-After), never shortening a longer hold set meanwhile.
-- KEYS[1] held until (ms)  ARGV[1] until ms  ARGV[2] ttl ms
local current = tonumber(redis.call('get', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0

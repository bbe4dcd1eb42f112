-- One request against a user's token bucket, as GCRA: the bucket is the time at which it
-- would be full again (its "theoretical arrival time"), one number per user and class.
-- KEYS[1] the bucket  ARGV[1] now (ms)  ARGV[2] ms per token  ARGV[3] burst tolerance (ms)
-- Returns 0 when the request may go (and takes its token), else the ms until it may.
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call('get', KEYS[1]) or '0')
if tat < now then
  tat = now
end
if tat - now > tolerance then
  return tostring(tat - now - tolerance)
end
local next_tat = tat + interval
redis.call('set', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now))
return '0'

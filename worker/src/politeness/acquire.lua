-- Asks for a turn to send one request to a host, shared by every worker process.
-- KEYS[1] leases (lease id -> expiry ms)  KEYS[2] earliest next start (ms)
-- KEYS[3] held until (ms; a Retry-After)  KEYS[4] breaker (exists while open)
-- KEYS[5] the last start time promised to a waiting request (ms)
-- ARGV[1] now ms  ARGV[2] most requests in flight (0 = no cap)  ARGV[3] interval ms
-- ARGV[4] lease ttl ms  ARGV[5] lease id  ARGV[6] spacing of waiters on a busy host (ms)
-- ARGV[7] the start this host promised the caller when it last turned it away (0: none)
-- Returns {1, 0, 'ok'} with the lease taken, or {0, wait ms, reason}.
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[3])
-- Leases of requests whose process died expire instead of holding the host forever.
redis.call('zremrangebyscore', KEYS[1], '-inf', now)

local held = tonumber(redis.call('get', KEYS[3]) or '0')
if held > now then
  return {0, held - now, 'retry_after'}
end
local open = redis.call('pttl', KEYS[4])
if open > 0 then
  return {0, open, 'breaker_open'}
end

-- A request that must wait is given its own later start, one interval (or busy spacing)
-- after the last one promised: a hundred jobs for one host come back one by one instead of
-- all at once, each to be turned away again.
local function wait_in_line(earliest, spacing, reason)
  local last = tonumber(redis.call('get', KEYS[5]) or '0')
  local slot = math.max(earliest, last + spacing, now + 1)
  redis.call('set', KEYS[5], slot, 'PX', slot - now + 60000)
  return {0, slot - now, reason}
end

-- A request already in line (it holds a promise) that finds the host not ready yet (the one
-- before it started late) keeps its place: it waits for the earliest start, not behind the line
-- (which would cost it a whole interval per late predecessor, and grow the line without end).
local promised = tonumber(ARGV[7]) > 0
local function wait_in_place(earliest, reason)
  local slot = math.max(earliest, now + 1)
  local last = tonumber(redis.call('get', KEYS[5]) or '0')
  if slot > last then
    redis.call('set', KEYS[5], slot, 'PX', slot - now + 60000)
  end
  return {0, slot - now, reason}
end

-- A newcomer does not jump the line: while starts are promised to waiting requests, it gets the
-- next free one after them. A request whose promised start has come takes its turn below.
local last = tonumber(redis.call('get', KEYS[5]) or '0')
if not promised and last > now then
  return wait_in_line(now, math.max(interval, tonumber(ARGV[6])), 'interval')
end

local cap = tonumber(ARGV[2])
if cap > 0 and redis.call('zcard', KEYS[1]) >= cap then
  local spacing = math.max(interval, tonumber(ARGV[6]))
  if promised then
    return wait_in_place(now + spacing, 'busy')
  end
  return wait_in_line(now + spacing, spacing, 'busy')
end
local next_start = tonumber(redis.call('get', KEYS[2]) or '0')
if next_start > now then
  if promised then
    return wait_in_place(next_start, 'interval')
  end
  return wait_in_line(next_start, interval, 'interval')
end

local ttl = tonumber(ARGV[4])
redis.call('zadd', KEYS[1], now + ttl, ARGV[5])
redis.call('pexpire', KEYS[1], ttl)
if interval > 0 then
  redis.call('set', KEYS[2], now + interval, 'PX', interval)
end
return {1, 0, 'ok'}

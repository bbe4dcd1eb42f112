-- Sends a ticket that is still alive back to wait until a due time (its lane's delayed set), and
-- remembers that time: the run it comes back as was promised it (its host's turn, say).
-- KEYS[1] items  KEYS[2] dispatching set  KEYS[3] interactive delayed set  KEYS[4] bulk delayed set
-- KEYS[5] promised times (ticket -> ms)
-- ARGV[1] ticket  ARGV[2] due ms
-- Returns 1, or 0 when the ticket is no longer alive.
redis.call('zrem', KEYS[2], ARGV[1])
local envelope = redis.call('hget', KEYS[1], ARGV[1])
if not envelope then
  return 0
end
local delayed = KEYS[3]
if cjson.decode(envelope).lane == 'bulk' then
  delayed = KEYS[4]
end
redis.call('zadd', delayed, tonumber(ARGV[2]), ARGV[1])
redis.call('hset', KEYS[5], ARGV[1], ARGV[2])
return 1

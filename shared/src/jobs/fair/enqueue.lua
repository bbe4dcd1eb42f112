-- Adds a ticket to a stage's fair queue: ready now (at the back of its owner's list, or at the
-- front for work that already waited its turn), or delayed until a due time.
-- KEYS[1] items hash (ticket -> envelope)
-- KEYS[2] the lane's delayed set (ticket -> due ms)
-- KEYS[3] the lane's ring of owners with ready tickets
-- KEYS[4] the lane's owner list prefix (the owner's list is KEYS[4] .. owner)
-- KEYS[5] ready counts per lane (hash)
-- ARGV[1] ticket  ARGV[2] envelope  ARGV[3] owner  ARGV[4] lane
-- ARGV[5] due ms (0 = now)  ARGV[6] now ms  ARGV[7] "front" or "back"
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
local due = tonumber(ARGV[5])
if due > tonumber(ARGV[6]) then
  redis.call('zadd', KEYS[2], due, ARGV[1])
  return 0
end
local list = KEYS[4] .. ARGV[3]
if ARGV[7] == 'front' then
  redis.call('lpush', list, ARGV[1])
else
  redis.call('rpush', list, ARGV[1])
end
-- An owner is in the ring exactly while its list is not empty.
if redis.call('llen', list) == 1 then
  redis.call('rpush', KEYS[3], ARGV[3])
end
redis.call('hincrby', KEYS[5], ARGV[4], 1)
return 1

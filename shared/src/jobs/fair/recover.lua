-- Puts back tickets taken for the runner but never handed to it (the taking process died
-- between the two steps): each goes to the front of its owner's list.
-- KEYS[1] items  KEYS[2] dispatching set  KEYS[3] ready counts
-- KEYS[4..6] interactive ring, delayed set, owner list prefix; KEYS[7..9] the same for bulk
-- ARGV[1] taken before this time (ms)
-- Returns how many were put back.
local lanes = {
  interactive = {ring = KEYS[4], prefix = KEYS[6]},
  bulk = {ring = KEYS[7], prefix = KEYS[9]},
}
local stuck = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
local back = 0
for _, ticket in ipairs(stuck) do
  redis.call('zrem', KEYS[2], ticket)
  local envelope = redis.call('hget', KEYS[1], ticket)
  if envelope then
    local e = cjson.decode(envelope)
    local lane = lanes[e.lane]
    if lane then
      local list = lane.prefix .. e.owner
      redis.call('lpush', list, ticket)
      if redis.call('llen', list) == 1 then
        redis.call('rpush', lane.ring, e.owner)
      end
      redis.call('hincrby', KEYS[3], e.lane, 1)
      back = back + 1
    end
  end
end
return back

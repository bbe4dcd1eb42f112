-- Takes the next ticket of a stage, fairly, if the runner's queue has room for it.
-- 1. Due delayed tickets go back to the front of their owner's list.
-- 2. Nothing is taken while what the runner already holds (its ready list, its scheduled set,
--    where every apalis push lands first, and the tickets being handed to it) reaches the
--    window: a short runner queue is what lets a later interactive job overtake.
-- 3. Lane: interactive first, except every bulk_every-th turn, when bulk goes first (its
--    guaranteed share); either lane takes the turn when the other is empty.
-- 4. Within the lane, round robin over owners: the owner at the head of the ring gives its
--    oldest ticket and goes to the back of the ring if it has more.
-- KEYS[1] items  KEYS[2] dispatching set  KEYS[3] turn counter  KEYS[4] ready counts
-- KEYS[5] the runner's ready list  KEYS[6] the runner's scheduled set
-- KEYS[7..9] interactive ring, delayed set, owner list prefix; KEYS[10..12] the same for bulk
-- KEYS[13] promised times (set when a ticket was deferred)
-- ARGV[1] now ms  ARGV[2] window  ARGV[3] bulk_every (0 = bulk only when interactive is empty)
-- ARGV[4] most delayed tickets promoted per lane and call
-- Returns {ticket, envelope, the time it was promised or ''} or false.
local now = tonumber(ARGV[1])
local lanes = {
  {name = 'interactive', ring = KEYS[7], delayed = KEYS[8], prefix = KEYS[9]},
  {name = 'bulk', ring = KEYS[10], delayed = KEYS[11], prefix = KEYS[12]},
}

local function list_ready(lane, owner, ticket)
  local list = lane.prefix .. owner
  redis.call('lpush', list, ticket)
  if redis.call('llen', list) == 1 then
    redis.call('rpush', lane.ring, owner)
  end
  redis.call('hincrby', KEYS[4], lane.name, 1)
end

for _, lane in ipairs(lanes) do
  local due = redis.call('zrangebyscore', lane.delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
  for _, ticket in ipairs(due) do
    redis.call('zrem', lane.delayed, ticket)
    local envelope = redis.call('hget', KEYS[1], ticket)
    if envelope then
      list_ready(lane, cjson.decode(envelope).owner, ticket)
    end
  end
end

local held = redis.call('llen', KEYS[5]) + redis.call('zcard', KEYS[6]) + redis.call('zcard', KEYS[2])
if held >= tonumber(ARGV[2]) then
  return false
end

local order = {lanes[1], lanes[2]}
local every = tonumber(ARGV[3])
if every > 0 and redis.call('incr', KEYS[3]) % every == 0 then
  order = {lanes[2], lanes[1]}
end

for _, lane in ipairs(order) do
  -- A ticket finished or replaced while listed has no envelope any more: skip it.
  for _ = 1, 100 do
    local owner = redis.call('lpop', lane.ring)
    if not owner then break end
    local list = lane.prefix .. owner
    local ticket = redis.call('lpop', list)
    if redis.call('llen', list) > 0 then
      redis.call('rpush', lane.ring, owner)
    end
    if ticket then
      redis.call('hincrby', KEYS[4], lane.name, -1)
      local envelope = redis.call('hget', KEYS[1], ticket)
      if envelope then
        redis.call('zadd', KEYS[2], now, ticket)
        local promised = redis.call('hget', KEYS[13], ticket) or ''
        redis.call('hdel', KEYS[13], ticket)
        return {ticket, envelope, promised}
      end
    end
  end
end
return false

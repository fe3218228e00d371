-- This node's subscription count of a channel changes. ARGV: 3 node, 4 app, 5 channel, 6 delta.
-- Returns 1 if the channel became occupied in the cluster (its first subscriber anywhere),
-- -1 if it became vacated (its last one anywhere left), else 0.
local me, app, ch, delta = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local suffix = ':subs:' .. app
local key = P .. ':n:' .. me .. suffix
local n = redis.call('HINCRBY', key, ch, delta)
redis.call('SADD', P .. ':n:' .. me .. ':keys', key)
if n <= 0 then
  redis.call('HDEL', key, ch)
  if n - delta > 0 and not elsewhere(alive(), me, suffix, ch) then return -1 end
elseif n == delta and not elsewhere(alive(), me, suffix, ch) then
  return 1
end
return 0

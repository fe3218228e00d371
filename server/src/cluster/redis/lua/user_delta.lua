-- This node's signed-in connections of a user change. ARGV: 3 node, 4 app, 5 user id, 6 delta.
-- Returns 1 if the user came online in the cluster (its first connection anywhere), -1 if it
-- went offline (its last one anywhere left), else 0.
local me, app, uid, delta = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local suffix = ':u:' .. app
local key = P .. ':n:' .. me .. suffix
local n = redis.call('HINCRBY', key, uid, delta)
redis.call('SADD', P .. ':n:' .. me .. ':keys', key)
if n <= 0 then
  redis.call('HDEL', key, uid)
  if n - delta > 0 and not elsewhere(alive(), me, suffix, uid) then return -1 end
elseif n == delta and not elsewhere(alive(), me, suffix, uid) then
  return 1
end
return 0

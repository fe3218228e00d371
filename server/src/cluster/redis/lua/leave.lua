-- A presence connection leaves. ARGV: 3 node, 4 app, 5 channel, 6 user id.
-- Returns 1 if it was the user's last connection in the cluster.
local me, app, ch, uid = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local own = P .. ':n:' .. me
local suffix = ':p:' .. app .. ':' .. ch
local counts = own .. ':pc:' .. app .. ':' .. ch
if redis.call('HINCRBY', counts, uid, -1) > 0 then return 0 end
redis.call('HDEL', counts, uid)
redis.call('HDEL', own .. suffix, uid)
local nodes = alive()
if elsewhere(nodes, me, suffix, uid) then return 0 end
return 1

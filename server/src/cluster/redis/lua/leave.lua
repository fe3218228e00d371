-- A presence connection leaves. KEYS[1] channel. ARGV: 1 node, 2 user id.
-- Returns 1 if it was the user's last connection in the cluster.
local me, uid = ARGV[1], ARGV[2]
local counts, mine = B .. ':mc:' .. me, B .. ':m:' .. me
if redis.call('HINCRBY', counts, uid, -1) > 0 then return 0 end
redis.call('HDEL', counts, uid)
redis.call('HDEL', mine, uid)
if redis.call('EXISTS', mine) == 0 then redis.call('SREM', B .. ':mn', me) end
if elsewhere(B .. ':mn', B .. ':m:', me, uid) then return 0 end
return 1

-- A presence connection joins. KEYS[1] channel. ARGV: 1 node, 2 user id, 3 user info (JSON),
-- 4 connection count to set (resync only; absent: one more connection).
-- Returns {1 if the user is new in the cluster else 0, members as flat id/info pairs (not on resync)}.
local me, uid = ARGV[1], ARGV[2]
local mine = B .. ':m:' .. me
local had = redis.call('HEXISTS', mine, uid)
local counts = B .. ':mc:' .. me
if ARGV[4] then redis.call('HSET', counts, uid, ARGV[4]) else redis.call('HINCRBY', counts, uid, 1) end
redis.call('HSET', mine, uid, ARGV[3])
redis.call('SADD', B .. ':mn', me)
local is_new = (had == 0 and not elsewhere(B .. ':mn', B .. ':m:', me, uid)) and 1 or 0
if ARGV[4] then return {is_new, {}} end
return {is_new, members(true)}

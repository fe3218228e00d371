-- A presence connection joins. ARGV: 3 node, 4 app, 5 channel, 6 user id, 7 user info (JSON),
-- 8 connection count to set (resync only; absent: one more connection).
-- Returns {1 if the user is new in the cluster else 0, members as flat id/info pairs (not on resync)}.
local me, app, ch, uid, info = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local nodes = alive()
local suffix = ':p:' .. app .. ':' .. ch
local own = P .. ':n:' .. me
local had = redis.call('HEXISTS', own .. suffix, uid)
local counts = own .. ':pc:' .. app .. ':' .. ch
if ARGV[8] then redis.call('HSET', counts, uid, ARGV[8]) else redis.call('HINCRBY', counts, uid, 1) end
redis.call('HSET', own .. suffix, uid, info)
redis.call('SADD', own .. ':pch', app .. '\n' .. ch)
redis.call('SADD', own .. ':keys', own .. suffix, counts)
local is_new = (had == 0 and not elsewhere(nodes, me, suffix, uid)) and 1 or 0
local members = {}
if not ARGV[8] then
  local seen = {}
  table.insert(nodes, me)
  for _, n in ipairs(nodes) do
    local h = redis.call('HGETALL', P .. ':n:' .. n .. suffix)
    for i = 1, #h, 2 do
      if not seen[h[i]] then
        seen[h[i]] = true
        table.insert(members, h[i]); table.insert(members, h[i + 1])
      end
    end
  end
end
return {is_new, members}

-- Removes a node's state of one channel (a dead node's, or this node's own before it rewrites
-- it). KEYS[1] channel. ARGV: 1 node. Returns {1 if the channel had subscribers on that node only
-- (vacated) else 0, the presence members that were on that node only}.
local d = ARGV[1]
local had = tonumber(redis.call('HGET', B .. ':s', d) or '0') > 0
redis.call('HDEL', B .. ':s', d)
local vacated = (had and redis.call('HLEN', B .. ':s') == 0) and 1 or 0
local mine = B .. ':m:' .. d
local orphans = {}
for _, uid in ipairs(redis.call('HKEYS', mine)) do
  if not elsewhere(B .. ':mn', B .. ':m:', d, uid) then table.insert(orphans, uid) end
end
redis.call('DEL', mine, B .. ':mc:' .. d)
redis.call('SREM', B .. ':mn', d)
return {vacated, orphans}

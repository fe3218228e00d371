-- Removes a node's state of one app, after its channels (reap_channel.lua). KEYS[1] app.
-- ARGV: 1 node. Returns the signed-in users that were on that node only.
local d = ARGV[1]
local offline = {}
for _, uid in ipairs(redis.call('HKEYS', B .. ':u:' .. d)) do
  if not elsewhere(B .. ':un', B .. ':u:', d, uid) then table.insert(offline, uid) end
end
redis.call('DEL', B .. ':u:' .. d, B .. ':c:' .. d)
redis.call('SREM', B .. ':un', d)
redis.call('SREM', B .. ':cn', d)
return offline

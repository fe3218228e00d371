-- Moves the nodes silent for longer than the timeout to the dead set (the ZREM decides which
-- caller moves each) and claims dead nodes to clean up: a claim lasts ARGV 3 ms, so a reaper that
-- dies is replaced. KEYS[1] nodes. ARGV: 1 this node, 2 node timeout in ms, 3 claim ms.
-- Returns the dead nodes this caller claimed (reap_channel.lua and reap_app.lua remove their
-- state, then the caller drops them from the dead set).
local dead = redis.call('ZRANGEBYSCORE', B, '-inf', '(' .. (now_ms() - tonumber(ARGV[2])))
for _, d in ipairs(dead) do
  if redis.call('ZREM', B, d) == 1 then redis.call('SADD', B .. ':dead', d) end
end
local claimed = {}
for _, d in ipairs(redis.call('SMEMBERS', B .. ':dead')) do
  if redis.call('SET', B .. ':claim:' .. d, ARGV[1], 'NX', 'PX', ARGV[3]) then
    table.insert(claimed, d)
  end
end
return claimed

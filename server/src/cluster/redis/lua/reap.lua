-- Removes the nodes silent for longer than the timeout (the ZREM decides which caller reaps).
-- No own ARGV. Returns {flat {app, channel, user id} of presence members that were on dead nodes
-- only, flat {app, channel} of channels that had subscribers on dead nodes only, flat {app, user id}
-- of signed-in users that were on dead nodes only}.
local nodes, now = alive()
local dead = redis.call('ZRANGEBYSCORE', P .. ':nodes', '-inf', '(' .. (now - tonumber(ARGV[2])))
local removed, vacated, offline = {}, {}, {}
for _, d in ipairs(dead) do
  if redis.call('ZREM', P .. ':nodes', d) == 1 then
    local own = P .. ':n:' .. d
    for _, entry in ipairs(redis.call('SMEMBERS', own .. ':pch')) do
      local sep = string.find(entry, '\n', 1, true)
      local app, ch = string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
      local suffix = ':p:' .. app .. ':' .. ch
      for _, uid in ipairs(redis.call('HKEYS', own .. suffix)) do
        if not elsewhere(nodes, d, suffix, uid) then
          table.insert(removed, app); table.insert(removed, ch); table.insert(removed, uid)
        end
      end
    end
    local subs, users = own .. ':subs:', own .. ':u:'
    for _, k in ipairs(redis.call('SMEMBERS', own .. ':keys')) do
      if string.sub(k, 1, #users) == users then
        local app = string.sub(k, #users + 1)
        for _, uid in ipairs(redis.call('HKEYS', k)) do
          if not elsewhere(nodes, d, ':u:' .. app, uid) then
            table.insert(offline, app); table.insert(offline, uid)
          end
        end
      end
      if string.sub(k, 1, #subs) == subs then
        local app = string.sub(k, #subs + 1)
        for _, ch in ipairs(redis.call('HKEYS', k)) do
          if not elsewhere(nodes, d, ':subs:' .. app, ch) then
            table.insert(vacated, app); table.insert(vacated, ch)
          end
        end
      end
    end
    for _, k in ipairs(redis.call('SMEMBERS', own .. ':keys')) do redis.call('DEL', k) end
    redis.call('DEL', own .. ':keys', own .. ':pch', own .. ':alive')
  end
end
return {removed, vacated, offline}

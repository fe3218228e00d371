-- The cluster's occupied channels of an app. ARGV: 3 app, 4 channel name prefix filter.
-- Returns flat {channel, subscriptions, users (-1 if not a presence channel)}.
local app, filter = ARGV[3], ARGV[4]
local nodes = alive()
local subs, order = {}, {}
for _, n in ipairs(nodes) do
  local h = redis.call('HGETALL', P .. ':n:' .. n .. ':subs:' .. app)
  for i = 1, #h, 2 do
    local ch = h[i]
    if string.sub(ch, 1, #filter) == filter then
      if not subs[ch] then subs[ch] = 0; table.insert(order, ch) end
      subs[ch] = subs[ch] + tonumber(h[i + 1])
    end
  end
end
local out = {}
for _, ch in ipairs(order) do
  local users = -1
  if string.sub(ch, 1, 9) == 'presence-' then
    local seen, count = {}, 0
    for _, n in ipairs(nodes) do
      for _, uid in ipairs(redis.call('HKEYS', P .. ':n:' .. n .. ':p:' .. app .. ':' .. ch)) do
        if not seen[uid] then seen[uid] = true; count = count + 1 end
      end
    end
    users = count
  end
  if subs[ch] > 0 then
    table.insert(out, ch); table.insert(out, subs[ch]); table.insert(out, users)
  end
end
return out

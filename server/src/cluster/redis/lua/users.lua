-- The cluster's members of a presence channel. ARGV: 3 app, 4 channel. Returns the user ids.
local nodes = alive()
local seen, out = {}, {}
for _, n in ipairs(nodes) do
  for _, uid in ipairs(redis.call('HKEYS', P .. ':n:' .. n .. ':p:' .. ARGV[3] .. ':' .. ARGV[4])) do
    if not seen[uid] then seen[uid] = true; table.insert(out, uid) end
  end
end
return out

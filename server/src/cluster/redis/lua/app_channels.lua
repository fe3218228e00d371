-- The channels of an app some node serves, whose name starts with a prefix. KEYS[1] app.
-- ARGV: 1 the prefix. Returns the names (their counts are read per channel: channel_info.lua).
local seen, out = {}, {}
for _, n in ipairs(redis.call('SMEMBERS', B .. ':cn')) do
  for _, ch in ipairs(redis.call('SMEMBERS', B .. ':c:' .. n)) do
    if not seen[ch] and string.sub(ch, 1, #ARGV[1]) == ARGV[1] then
      seen[ch] = true
      table.insert(out, ch)
    end
  end
end
return out

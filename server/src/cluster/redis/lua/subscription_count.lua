-- Announces a channel's subscription count, summed over the nodes. KEYS[1] channel. ARGV: 1 the
-- channel as a JSON string, 2 the bus envelope up to its frame ('' = count only, nothing
-- published), 3 the publish command (PUBLISH, or SPUBLISH on a Redis Cluster), 4 the route.
-- Counting and publishing in one script keeps announcements in count order. Returns the count.
local n = 0
for _, v in ipairs(redis.call('HVALS', B .. ':s')) do n = n + tonumber(v) end
if ARGV[2] ~= '' then
  local frame = '{"event":"pusher_internal:subscription_count","channel":' .. ARGV[1]
    .. ',"data":"{\\"subscription_count\\":' .. n .. '}"}'
  redis.call(ARGV[3], ARGV[4], ARGV[2] .. frame .. '}')
end
return n

-- Announces a channel's subscription count, summed over the live nodes. ARGV: 3 app, 4 channel,
-- 5 the channel as a JSON string, 6 the bus envelope up to its frame ('' = count only, nothing
-- published). Counting and publishing in one script keeps announcements in count order.
-- Returns the count.
local app, ch = ARGV[3], ARGV[4]
local n = 0
for _, node in ipairs(alive()) do
  n = n + tonumber(redis.call('HGET', P .. ':n:' .. node .. ':subs:' .. app, ch) or 0)
end
if ARGV[6] ~= '' then
  local frame = '{"event":"pusher_internal:subscription_count","channel":' .. ARGV[5]
    .. ',"data":"{\\"subscription_count\\":' .. n .. '}"}'
  redis.call('PUBLISH', P .. ':c:' .. app .. ':' .. ch, ARGV[6] .. frame .. '}')
end
return n

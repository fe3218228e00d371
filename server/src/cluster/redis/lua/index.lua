-- Keeps the app's list of the channels each node serves (what channel listing reads). KEYS[1]
-- app. ARGV: 1 node, 2 channel, 3 '1' (the node serves it) or '0' (no longer).
local key = B .. ':c:' .. ARGV[1]
if ARGV[3] == '1' then
  redis.call('SADD', key, ARGV[2])
  redis.call('SADD', B .. ':cn', ARGV[1])
else
  redis.call('SREM', key, ARGV[2])
  if redis.call('EXISTS', key) == 0 then redis.call('SREM', B .. ':cn', ARGV[1]) end
end
return 1

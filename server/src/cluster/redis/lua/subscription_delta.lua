-- This node's subscription count of a channel changes. ARGV: 3 node, 4 app, 5 channel, 6 delta.
local key = P .. ':n:' .. ARGV[3] .. ':subs:' .. ARGV[4]
if redis.call('HINCRBY', key, ARGV[5], ARGV[6]) <= 0 then redis.call('HDEL', key, ARGV[5]) end
redis.call('SADD', P .. ':n:' .. ARGV[3] .. ':keys', key)
return 1

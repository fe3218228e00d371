-- This node's subscription count of a channel changes. KEYS[1] channel. ARGV: 1 node, 2 delta.
-- Returns {1 if the channel became occupied in the cluster (its first subscriber anywhere), -1 if
-- it became vacated (its last one anywhere left), else 0; this node's count now}.
local key, me, delta = B .. ':s', ARGV[1], tonumber(ARGV[2])
local n = redis.call('HINCRBY', key, me, delta)
if n <= 0 then redis.call('HDEL', key, me) end
local others = redis.call('HLEN', key) - (n > 0 and 1 or 0)
local change = 0
if others == 0 then
  if n <= 0 and n - delta > 0 then change = -1
  elseif n > 0 and n == delta then change = 1 end
end
return {change, math.max(n, 0)}

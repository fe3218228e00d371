-- This node is alive. KEYS[1] nodes. ARGV: 1 node, 2 node timeout in ms.
-- Returns {1 if the node was on the list, 0 if not (Redis lost it, or it was reaped: the node
-- must write its state again), -1 while it is being reaped (wait: it is not listed again until its
-- old state is gone); the nodes alive}.
local now = now_ms()
local alive = redis.call('ZRANGEBYSCORE', B, now - tonumber(ARGV[2]), '+inf')
if redis.call('SISMEMBER', B .. ':dead', ARGV[1]) == 1 then return {-1, alive} end
local listed = redis.call('ZSCORE', B, ARGV[1]) and 1 or 0
redis.call('ZADD', B, now, ARGV[1])
return {listed, alive}

-- This node is alive. ARGV: 3 node. Returns {1 if the node's state was still there (0: Redis
-- lost it or the node was reaped, so it must write it again), the nodes alive (before this one
-- refreshed itself)}.
local nodes, now = alive()
local own = P .. ':n:' .. ARGV[3]
local existed = redis.call('EXISTS', own .. ':alive')
redis.call('SET', own .. ':alive', '1')
redis.call('ZADD', P .. ':nodes', now, ARGV[3])
return {existed, nodes}

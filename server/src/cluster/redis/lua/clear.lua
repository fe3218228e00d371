-- Deletes this node's own state (before rewriting it, or on shutdown). ARGV: 3 node.
local own = P .. ':n:' .. ARGV[3]
for _, k in ipairs(redis.call('SMEMBERS', own .. ':keys')) do redis.call('DEL', k) end
redis.call('DEL', own .. ':keys', own .. ':pch')
return 1

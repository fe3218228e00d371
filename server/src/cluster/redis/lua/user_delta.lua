-- This node's signed-in connections of a user change. ARGV: 3 node, 4 app, 5 user id, 6 delta.
-- Returns 1 if the user came online in the cluster (its first connection anywhere), -1 if it
-- went offline (its last one anywhere left), else 0.
return count_change(ARGV[3], ':u:' .. ARGV[4], ARGV[5], tonumber(ARGV[6]))

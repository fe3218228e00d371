-- This node's signed-in connections of a user change. KEYS[1] app. ARGV: 1 node, 2 user id,
-- 3 delta. Returns 1 if the user came online in the cluster (its first connection anywhere), -1
-- if it went offline (its last one anywhere left), else 0.
return count_change(B .. ':un', B .. ':u:', ARGV[1], ARGV[2], tonumber(ARGV[3]))

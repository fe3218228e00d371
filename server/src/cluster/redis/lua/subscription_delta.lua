-- This node's subscription count of a channel changes. ARGV: 3 node, 4 app, 5 channel, 6 delta.
-- Returns 1 if the channel became occupied in the cluster (its first subscriber anywhere),
-- -1 if it became vacated (its last one anywhere left), else 0.
return count_change(ARGV[3], ':subs:' .. ARGV[4], ARGV[5], tonumber(ARGV[6]))

-- A channel's counts in the cluster. KEYS[1] channel. ARGV: 1 '1' for a presence channel.
-- Returns {subscriptions, users (-1 if not a presence channel)}.
local subs = 0
for _, v in ipairs(redis.call('HVALS', B .. ':s')) do subs = subs + tonumber(v) end
if ARGV[1] ~= '1' then return {subs, -1} end
return {subs, #members(false)}

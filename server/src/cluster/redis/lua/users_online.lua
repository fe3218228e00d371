-- Which of some users are signed in anywhere in the cluster. KEYS[1] app. ARGV: the user ids.
-- Returns those online.
local nodes = redis.call('SMEMBERS', B .. ':un')
local online = {}
for i = 1, #ARGV do
  for _, n in ipairs(nodes) do
    if redis.call('HEXISTS', B .. ':u:' .. n, ARGV[i]) == 1 then
      table.insert(online, ARGV[i])
      break
    end
  end
end
return online

-- Which of some users are online (signed in on a live node). ARGV: 3 app, 4… user ids.
-- Returns those online.
local nodes = alive()
local online = {}
for i = 4, #ARGV do
  for _, n in ipairs(nodes) do
    if redis.call('HEXISTS', P .. ':n:' .. n .. ':u:' .. ARGV[3], ARGV[i]) == 1 then
      table.insert(online, ARGV[i])
      break
    end
  end
end
return online

-- Publishes an event on a channel with history: gives it the channel's next offset, keeps it in
-- the channel's stream and publishes it on the channel's route, atomically, so delivery order is
-- offset order.
-- ARGV: 3 app, 4 channel, 5 ttl ms, 6 stream size, 7 epoch to start a new stream with, 8 the frame
-- without its final `}`, 9 the bus envelope up to its frame, 10 the excluded socket id ('' = none).
-- Returns the offset.
local base = P .. ':h:' .. ARGV[3] .. ':' .. ARGV[4]
local ttl = tonumber(ARGV[5])
local epoch = stream_epoch(base, ARGV[7], ttl)
local offset = redis.call('INCR', base .. ':offset')
local frame = ARGV[8] .. ',"position":{"epoch":"' .. epoch .. '","offset":' .. offset .. '}}'
redis.call('XADD', base .. ':stream', 'MAXLEN', ARGV[6], '*', 'o', offset, 'f', frame, 'x', ARGV[10])
redis.call('PEXPIRE', base .. ':epoch', ttl)
redis.call('PEXPIRE', base .. ':offset', ttl)
redis.call('PEXPIRE', base .. ':stream', ttl)
-- On the channel's route (routes.rs names it the same way): only nodes serving it get it.
redis.call('PUBLISH', P .. ':c:' .. ARGV[3] .. ':' .. ARGV[4], ARGV[9] .. frame .. '}')
return offset

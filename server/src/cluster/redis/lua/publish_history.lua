-- Publishes an event on a channel with history: gives it the channel's next offset, keeps it in
-- the channel's stream and publishes it on the channel's route, atomically, so delivery order is
-- offset order. KEYS[1] channel.
-- ARGV: 1 ttl ms, 2 stream size, 3 epoch to start a new stream with, 4 the frame without its
-- final `}`, 5 the bus envelope up to its frame, 6 the excluded socket id ('' = none), 7 the
-- publish command (PUBLISH, or SPUBLISH on a Redis Cluster), 8 the route.
-- Returns the offset.
local ttl = tonumber(ARGV[1])
local epoch = stream_epoch(ARGV[3], ttl)
local offset = redis.call('INCR', B .. ':h:offset')
local frame = ARGV[4] .. ',"position":{"epoch":"' .. epoch .. '","offset":' .. offset .. '}}'
redis.call('XADD', B .. ':h:stream', 'MAXLEN', ARGV[2], '*', 'o', offset, 'f', frame, 'x', ARGV[6])
redis.call('PEXPIRE', B .. ':h:epoch', ttl)
redis.call('PEXPIRE', B .. ':h:offset', ttl)
redis.call('PEXPIRE', B .. ':h:stream', ttl)
-- On the channel's route: only nodes serving it get it.
redis.call(ARGV[7], ARGV[8], ARGV[5] .. frame .. '}')
return offset

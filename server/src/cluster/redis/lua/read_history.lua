-- Reads a channel's history. ARGV: 3 app, 4 channel, 5 ttl ms, 6 epoch to start a new stream
-- with, 7 recover from this epoch ('' = no recovery: the newest frames), 8 recover from this
-- offset, 9 how many of the newest frames to return without recovery (unused with it), 10 the
-- recovering client's previous socket id ('' = none; its `toOthers()` events are skipped).
-- Returns {epoch, top offset, status, frames}: status is `none` (no recovery asked), `ok`,
-- `epoch_changed` or `expired`.
local base = P .. ':h:' .. ARGV[3] .. ':' .. ARGV[4]
local ttl = tonumber(ARGV[5])
local epoch = stream_epoch(base, ARGV[6], ttl)
local top = tonumber(redis.call('GET', base .. ':offset') or '0')
local _, now = alive()
redis.call('XTRIM', base .. ':stream', 'MINID', now - ttl)
local entries = redis.call('XRANGE', base .. ':stream', '-', '+')
local out = {}
if ARGV[7] == '' then
  local limit = tonumber(ARGV[9])
  local first = math.max(1, #entries - limit + 1)
  for i = first, #entries do table.insert(out, entries[i][2][4]) end
  return {epoch, top, 'none', out}
end
local from = tonumber(ARGV[8])
if ARGV[7] ~= epoch or from > top then return {epoch, top, 'epoch_changed', out} end
local oldest = top + 1
if #entries > 0 then oldest = tonumber(entries[1][2][2]) end
if from + 1 < oldest then return {epoch, top, 'expired', out} end
for _, e in ipairs(entries) do
  if tonumber(e[2][2]) > from and (ARGV[10] == '' or e[2][6] ~= ARGV[10]) then table.insert(out, e[2][4]) end
end
return {epoch, top, 'ok', out}

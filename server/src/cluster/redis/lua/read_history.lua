-- Reads a channel's history. KEYS[1] channel, KEYS[2] its slot's genesis (keys.rs). ARGV: 1 ttl
-- ms, 2 the genesis if the slot has none yet, 3 recover from this epoch ('' = no recovery: the newest frames), 4 recover from this
-- offset, 5 how many of the newest frames to return without recovery (unused with it), 6 the
-- recovering client's previous socket id ('' = none; its `toOthers()` events are skipped).
-- Returns {epoch, top offset, status, frames}: status is `none` (no recovery asked), `ok`,
-- `epoch_changed` or `expired`. Reading never starts a stream (publish_history.lua does): a
-- channel without one answers its origin position, `{genesis}.{ms}` at offset 0 (hub/history.rs
-- says why recovering from it is exact within the ttl). The genesis is the slot's: a shard that
-- restarts empty loses it with the streams, so their old positions get `epoch_changed`.
local ttl = tonumber(ARGV[1])
local now = now_ms()
redis.call('SET', KEYS[2], ARGV[2], 'NX')
local genesis = redis.call('GET', KEYS[2])
local epoch = redis.call('GET', B .. ':h:epoch')
local recovering = ARGV[3] ~= ''
local from_epoch, from = ARGV[3], tonumber(ARGV[4])
local status = nil
local g, t = string.match(from_epoch, '^(%x+)%.(%d+)$')
if recovering and g then
  if g ~= genesis then status = 'epoch_changed'
  elseif now - tonumber(t) > ttl then status = 'expired'
  elseif epoch then from_epoch, from = epoch, 0
  else status = 'ok' end
end
local out = {}
if not epoch then
  local origin = genesis .. '.' .. string.format('%d', now)
  if not recovering then return {origin, 0, 'none', out} end
  return {origin, 0, status or 'epoch_changed', out}
end
local top = tonumber(redis.call('GET', B .. ':h:offset') or '0')
local stream = B .. ':h:stream'
redis.call('XTRIM', stream, 'MINID', now - ttl)
-- Offsets are consecutive in the stream (one entry per INCR) and trimming drops the oldest, so
-- the events after `from` are the newest `top - from` entries: read only those, never the whole
-- stream (a script blocks Redis for every node while it runs).
if not recovering then
  local limit = tonumber(ARGV[5])
  if limit > 0 then
    local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', limit)
    for i = #newest, 1, -1 do table.insert(out, newest[i][2][4]) end
  end
  return {epoch, top, 'none', out}
end
if status then return {epoch, top, status, out} end
if from_epoch ~= epoch or from > top then return {epoch, top, 'epoch_changed', out} end
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
local oldest = top + 1
if #first > 0 then oldest = tonumber(first[1][2][2]) end
if from + 1 < oldest then return {epoch, top, 'expired', out} end
if top > from then
  local missed = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', top - from)
  for i = #missed, 1, -1 do
    local e = missed[i]
    if ARGV[6] == '' or e[2][6] ~= ARGV[6] then table.insert(out, e[2][4]) end
  end
end
return {epoch, top, 'ok', out}

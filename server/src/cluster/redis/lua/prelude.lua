-- Prepended to every script. ARGV[1] = key prefix, ARGV[2] = node timeout in ms; each script's
-- own arguments follow from ARGV[3] (named in its header and in scripts.rs).
local P = ARGV[1]

-- The nodes that heartbeated within the timeout, and the time in ms.
local function alive()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return redis.call('ZRANGEBYSCORE', P .. ':nodes', now - tonumber(ARGV[2]), '+inf'), now
end

-- Whether a node of `nodes` other than `me` has `uid` in its hash `…:n:{node}{suffix}`.
local function elsewhere(nodes, me, suffix, uid)
  for _, n in ipairs(nodes) do
    if n ~= me and redis.call('HEXISTS', P .. ':n:' .. n .. suffix, uid) == 1 then return true end
  end
  return false
end

-- The epoch of the history stream under `base`; a stream that is gone starts over with `fresh`.
local function stream_epoch(base, fresh, ttl)
  local epoch = redis.call('GET', base .. ':epoch')
  if epoch then return epoch end
  redis.call('SET', base .. ':epoch', fresh, 'PX', ttl)
  redis.call('SET', base .. ':offset', 0, 'PX', ttl)
  redis.call('DEL', base .. ':stream')
  return fresh
end

-- This node's count of `field` in its hash `…:n:{me}{suffix}` changes by `delta` (the hash is one
-- of the node's keys, deleted with it). Returns 1 if that made the first one anywhere in the
-- cluster, -1 if the last one anywhere left, else 0.
local function count_change(me, suffix, field, delta)
  local key = P .. ':n:' .. me .. suffix
  local n = redis.call('HINCRBY', key, field, delta)
  redis.call('SADD', P .. ':n:' .. me .. ':keys', key)
  if n <= 0 then
    redis.call('HDEL', key, field)
    if n - delta > 0 and not elsewhere(alive(), me, suffix, field) then return -1 end
  elseif n == delta and not elsewhere(alive(), me, suffix, field) then
    return 1
  end
  return 0
end

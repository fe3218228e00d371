-- Prepended to every script. KEYS[1] is the base of every key the script touches: they all carry
-- its hash tag, so they are in one Redis Cluster slot (keys.rs names them). Each script's ARGV is
-- named in its header and in scripts.rs.
local B = KEYS[1]

-- The server's clock in ms.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Whether a node in the set `nodes`, other than `me`, has `field` in its hash `{prefix}{node}`.
-- A node's hashes stay until it is reaped, so a dead node counts until then.
local function elsewhere(nodes, prefix, me, field)
  for _, n in ipairs(redis.call('SMEMBERS', nodes)) do
    if n ~= me and redis.call('HEXISTS', prefix .. n, field) == 1 then return true end
  end
  return false
end

-- This node's count of `field` in its hash `{prefix}{me}` changes by `delta`; `nodes` is the set
-- of the nodes that have such a hash. Returns 1 if that made the first one anywhere in the
-- cluster, -1 if the last one anywhere left, else 0.
local function count_change(nodes, prefix, me, field, delta)
  local key = prefix .. me
  local n = redis.call('HINCRBY', key, field, delta)
  redis.call('SADD', nodes, me)
  if n <= 0 then
    redis.call('HDEL', key, field)
    if redis.call('EXISTS', key) == 0 then redis.call('SREM', nodes, me) end
    if n - delta > 0 and not elsewhere(nodes, prefix, me, field) then return -1 end
  elseif n == delta and not elsewhere(nodes, prefix, me, field) then
    return 1
  end
  return 0
end

-- The member ids of a presence channel (the channel's base), each once, and their infos.
local function members(with_info)
  local seen, out = {}, {}
  for _, n in ipairs(redis.call('SMEMBERS', B .. ':mn')) do
    local h = redis.call('HGETALL', B .. ':m:' .. n)
    for i = 1, #h, 2 do
      if not seen[h[i]] then
        seen[h[i]] = true
        table.insert(out, h[i])
        if with_info then table.insert(out, h[i + 1]) end
      end
    end
  end
  return out
end

-- The epoch of the channel's history stream; a stream that is gone starts over with `fresh`.
local function stream_epoch(fresh, ttl)
  local epoch = redis.call('GET', B .. ':h:epoch')
  if epoch then return epoch end
  redis.call('SET', B .. ':h:epoch', fresh, 'PX', ttl)
  redis.call('SET', B .. ':h:offset', 0, 'PX', ttl)
  redis.call('DEL', B .. ':h:stream')
  return fresh
end

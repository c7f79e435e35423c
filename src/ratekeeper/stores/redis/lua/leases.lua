-- Concurrency leases: a cap's sorted set, member = lease id, score = expiry (ms).
-- Leases past their expiry stop counting: a crashed holder's slot comes back.
-- Included by lease_acquire.lua, and by decide.lua where a step needs it.

-- the live leases of a cap at now (ms): taking drops the expired ones first,
-- a look only counts
local function leases_held(key, now, take)
  if take then
    call('ZREMRANGEBYSCORE', key, '-inf', num(now))
    return call('ZCARD', key)
  end
  return call('ZCOUNT', key, '(' .. num(now), '+inf')
end

-- a slot of the cap until expires (ms); the set lives as long as its last lease
local function lease_take(key, lease_id, expires, now)
  call('ZADD', key, num(expires), lease_id)
  local last = call('ZRANGE', key, -1, -1, 'WITHSCORES')
  call('PEXPIRE', key, num(tonumber(last[2]) - now))
end

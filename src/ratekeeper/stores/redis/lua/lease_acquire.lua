-- ratekeeper: take one of ARGV[1] slots of a concurrency cap.
--
-- KEYS[1]  the cap's sorted set: member = lease id, score = expiry (ms)
-- ARGV     limit, ttl_ms, lease_id, now_ms ('' for the server's clock)
-- Returns  {granted (1/0), leases in use after this call}
--
-- Leases past their expiry stop counting: a crashed holder's slot comes back.

local limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= limit then return {0, held} end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', tonumber(last[2]) - now))
return {1, held + 1}

-- ratekeeper: give a lease back.
--
-- KEYS[1]  the cap's sorted set
-- ARGV     lease_id, now_ms ('' for the server's clock)
-- Returns  1 if the lease was live and is released, 0 if unknown or expired

local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(expires) <= now then return 0 end
return 1

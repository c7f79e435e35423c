-- ratekeeper: take one of ARGV[1] slots of a concurrency cap (leases.lua).
--
-- KEYS[1]  the cap's sorted set: member = lease id, score = expiry (ms)
-- ARGV     limit, ttl_ms, lease_id, now_ms ('' for the server's clock)
-- Returns  {granted (1/0), leases in use after this call}

--! include prelude
--! include clock
--! include leases

local limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(ARGV[4]) or server_ms()
local held = leases_held(KEYS[1], now, true)
if held >= limit then return {0, held} end
lease_take(KEYS[1], ARGV[3], now + ttl, now)
return {1, held + 1}

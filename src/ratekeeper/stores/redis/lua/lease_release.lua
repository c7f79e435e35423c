-- ratekeeper: give a lease back.
--
-- KEYS[1]  the cap's sorted set
-- ARGV     lease_id, now_ms ('' for the server's clock)
-- Returns  1 if the lease was live and is released, 0 if unknown or expired

--! include prelude
--! include clock

local now = tonumber(ARGV[2]) or server_ms()
local expires = call('ZSCORE', KEYS[1], ARGV[1])
if not expires then return 0 end
call('ZREM', KEYS[1], ARGV[1])
if tonumber(expires) <= now then return 0 end
return 1

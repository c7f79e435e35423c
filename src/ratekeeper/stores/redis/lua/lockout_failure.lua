-- ratekeeper: count one failure; at the threshold, block the key (lockouts.lua).
--
-- KEYS[1]  the failure log (a list of times, ms)
-- KEYS[2]  the block: "until streak last_block_end" (ms)
-- ARGV     threshold, window_ms, block_ms, escalation, max_block_ms ('' none),
--          streak_memory_ms, now_ms ('' for the server's clock)
-- Returns  {until (0 if not blocked), failures, streak}

--! include prelude
--! include clock
--! include lockouts

local now = tonumber(ARGV[7]) or server_ms()
local until_, failures, streak = record_failure(KEYS[1], KEYS[2], now, tonumber(ARGV[1]),
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))
return {until_, failures, streak}

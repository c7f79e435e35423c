-- ratekeeper: count one failure; at the threshold, block the key.
--
-- KEYS[1]  the failure log (a list of times, ms)
-- KEYS[2]  the block: "until streak last_block_end" (ms)
-- ARGV     threshold, window_ms, block_ms, escalation, max_block_ms ('' none),
--          streak_memory_ms, now_ms ('' for the server's clock)
-- Returns  {until (0 if not blocked), failures, streak}

local threshold, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local block, escalation = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_block, memory = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = tonumber(ARGV[7])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(x) return string.format('%.0f', x) end

local until_, streak, last_end = 0, 0, 0
local state = redis.call('GET', KEYS[2])
if state then
  local words = {}
  for w in string.gmatch(state, '%S+') do words[#words + 1] = tonumber(w) end
  until_, streak, last_end = words[1], words[2], words[3]
end
if until_ > now then
  return {until_, redis.call('LLEN', KEYS[1]), streak}
end
local horizon = now - window
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head or tonumber(head) > horizon then break end
  redis.call('LPOP', KEYS[1])
end
redis.call('RPUSH', KEYS[1], num(now))
redis.call('PEXPIRE', KEYS[1], num(window))
local failures = redis.call('LLEN', KEYS[1])
if failures < threshold then
  return {0, failures, streak}
end
if last_end + memory <= now then streak = 0 end
streak = streak + 1
local length = block * escalation ^ (streak - 1)
if max_block and length > max_block then length = max_block end
length = math.floor(length + 0.5)
until_ = now + length
redis.call('SET', KEYS[2], num(until_) .. ' ' .. num(streak) .. ' ' .. num(until_),
  'PX', num(until_ + memory - now))
redis.call('DEL', KEYS[1])
return {until_, threshold, streak}

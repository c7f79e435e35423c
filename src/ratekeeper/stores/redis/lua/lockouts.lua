-- Lockouts: a failure log (a list of times, ms) and a block,
-- "until streak last_block_end" (ms), kept while its streak is remembered.
-- Included by lockout_failure.lua, and by decide.lua where a step needs it.

-- a block's until, streak and last_block_end (0 0 0 when there is none)
local function block_of(key)
  local state = call('GET', key)
  if not state then return 0, 0, 0 end
  local words = {}
  for w in string.gmatch(state, '%S+') do words[#words + 1] = tonumber(w) end
  return words[1], words[2], words[3]
end

-- one failure at now; at the threshold, a block (the n-th in a streak lasts
-- block * escalation^(n-1), at most max_block: nil or 0 for none).
-- Returns until (0 if not blocked), failures, streak.
local function record_failure(log, key, now, threshold, window, block, escalation, max_block,
                              memory)
  local until_, streak, last_end = block_of(key)
  if until_ > now then
    return until_, call('LLEN', log), streak
  end
  local horizon = now - window
  while true do
    local head = call('LINDEX', log, 0)
    if not head or tonumber(head) > horizon then break end
    call('LPOP', log)
  end
  call('RPUSH', log, num(now))
  call('PEXPIRE', log, num(window))
  local failures = call('LLEN', log)
  if failures < threshold then
    return 0, failures, streak
  end
  if last_end + memory <= now then streak = 0 end
  streak = streak + 1
  local length = block * escalation ^ (streak - 1)
  if max_block and max_block > 0 and length > max_block then length = max_block end
  length = math.floor(length + 0.5)
  until_ = now + length
  call('SET', key, num(until_) .. ' ' .. num(streak) .. ' ' .. num(until_),
    'PX', num(until_ + memory - now))
  call('DEL', log)
  return until_, threshold, streak
end

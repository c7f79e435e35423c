-- ratekeeper: decide and charge every rate of one decision, all or none.
--
-- KEYS[i]   the counter of charge i (all keys share one hash tag)
-- ARGV[1]   1 to consume, 0 to only look (peek)
-- ARGV[2]   '' to use the server's clock; a time in ms for tests with a fake clock
-- ARGV[3..] six values per charge: algorithm, limit, window_ms, capacity, cost, shadow
--           algorithm: 1 fixed_window, 2 sliding_window, 3 sliding_log, 4 token_bucket
--
-- Returns {admitted, now_ms, allowed_1, remaining_1, reset_ms_1, retry_ms_1, ...}.
--
-- Time is the server's (TIME), in whole milliseconds, so every app server
-- agrees. Lua numbers are doubles: integers are exact below 2^53, so every
-- product below is kept under that (limit x window_ms < 9e15: 100 million per
-- day) and divisions go through idiv/ceildiv, which are exact.

if redis.replicate_commands then pcall(redis.replicate_commands) end

local function idiv(a, b)  -- floor(a / b) for a >= 0, b > 0, exactly
  return (a - math.fmod(a, b)) / b
end

local function ceildiv(a, b)  -- ceil(a / b) for a >= 0, b > 0, exactly
  local r = math.fmod(a, b)
  if r == 0 then return a / b end
  return (a - r) / b + 1
end

local function num(x) return string.format('%.0f', x) end

local function words(key)
  local v = redis.call('GET', key)
  if not v then return nil end
  local out = {}
  for w in string.gmatch(v, '%S+') do out[#out + 1] = tonumber(w) end
  return out
end

-- Each evaluator answers allowed, room, reset, retry and a commit function
-- that writes the state for an admitted request.

local function fixed_window(key, now, cost, limit, window)
  local s = words(key)
  local e, count
  if s and s[1] - window <= now and now < s[1] then
    e, count = s[1], s[2]
  else
    e, count = now - math.fmod(now, window) + window, 0
  end
  local room = limit - count
  if room < 0 then room = 0 end
  if cost <= room then
    local after = count + cost
    local reset = now
    if after > 0 then reset = e end
    return 1, room, reset, 0, function()
      redis.call('SET', key, num(e) .. ' ' .. num(after), 'PX', num(e - now))
    end
  end
  local retry = window
  if cost <= limit then retry = e - now end
  return 0, room, now + retry, retry, nil
end

local function sliding_window(key, now, cost, limit, window)
  local s = words(key)
  local e, previous, current
  if s and s[1] - window <= now and now < s[1] then
    e, previous, current = s[1], s[2], s[3]
  else
    e = now - math.fmod(now, window) + window
    previous, current = 0, 0
    if s and s[1] == e - window then previous = s[3] end
  end
  local left = e - now
  local weighted = previous * left  -- the previous window's share, scaled by window
  local spare = limit - current - cost
  local function commit()
    redis.call('SET', key, num(e) .. ' ' .. num(previous) .. ' ' .. num(current + cost),
      'PX', num(e + window - now))
  end
  if spare >= 0 and weighted <= spare * window then
    local room = limit - current - ceildiv(weighted, window)
    local reset
    if current + cost > 0 then reset = e + window elseif previous > 0 then reset = e else reset = now end
    return 1, room, reset, 0, commit
  end
  local free = limit * window - weighted - current * window
  local room = 0
  if free > 0 then room = idiv(free, window) end
  local retry
  if cost > limit then
    retry = window
  elseif spare >= 0 then
    retry = left - idiv(spare * window, previous)
  else
    retry = left + window - idiv((limit - cost) * window, current)
  end
  return 0, room, now + retry, retry, nil
end

local function sliding_log(key, now, cost, limit, window)
  local horizon = now - window
  while true do
    local head = redis.call('LINDEX', key, 0)
    if not head or tonumber(head) > horizon then break end
    redis.call('LPOP', key)
  end
  local count = redis.call('LLEN', key)
  local room = limit - count
  if room < 0 then room = 0 end
  if cost <= room then
    local reset = now
    if cost > 0 then
      reset = now + window
    elseif count > 0 then
      reset = tonumber(redis.call('LINDEX', key, -1)) + window
    end
    return 1, room, reset, 0, function()
      local stamp = num(now)
      local left = cost
      while left > 0 do
        local batch = {}
        for i = 1, math.min(left, 1000) do batch[i] = stamp end
        redis.call('RPUSH', key, unpack(batch))
        left = left - #batch
      end
      redis.call('PEXPIRE', key, num(window))
    end
  end
  local retry = window
  if cost <= limit then
    retry = tonumber(redis.call('LINDEX', key, count + cost - limit - 1)) + window - now
  end
  return 0, room, now + retry, retry, nil
end

-- token bucket (GCRA): the TAT is q + r / limit milliseconds, 0 <= r < limit,
-- so it stays exact whatever window / limit is
local function token_bucket(key, now, cost, limit, window, capacity)
  local s = words(key)
  local q, r = now, 0
  if s and (s[1] > now or (s[1] == now and s[2] > 0)) then q, r = s[1], s[2] end
  local span = capacity * window
  local used = (q - now) * limit + r
  local free = span - used
  local room = 0
  if free > 0 then room = idiv(free, window) end
  local total = r + cost * window
  local nq = q + idiv(total, limit)
  local nr = math.fmod(total, limit)
  local after = (nq - now) * limit + nr
  if after <= span then
    local reset = nq
    if nr > 0 then reset = nq + 1 end
    return 1, room, reset, 0, function()
      if reset > now then
        redis.call('SET', key, num(nq) .. ' ' .. num(nr), 'PX', num(reset - now))
      end
    end
  end
  local retry = window
  if cost <= capacity then retry = ceildiv(after - span, limit) end
  return 0, room, now + retry, retry, nil
end

local evaluators = {fixed_window, sliding_window, sliding_log, token_bucket}

local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local consume = ARGV[1] == '1'
local n = #KEYS
local answers = {}
local admitted = 1
for i = 1, n do
  local base = 2 + (i - 1) * 6
  local algorithm = tonumber(ARGV[base + 1])
  local limit, window = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local capacity, cost = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
  local shadow = ARGV[base + 6] == '1'
  local evaluate = evaluators[algorithm]
  local allowed, room, reset, retry, commit = evaluate(KEYS[i], now, cost, limit, window, capacity)
  answers[i] = {allowed, room, reset, retry, commit, evaluate, limit, window, capacity, cost}
  if allowed == 0 and not shadow then admitted = 0 end
end

local out = {admitted, now}
for i = 1, n do
  local a = answers[i]
  local allowed, room, reset, retry, commit = a[1], a[2], a[3], a[4], a[5]
  local remaining = room
  if allowed == 1 then
    if admitted == 1 and consume then
      if a[10] > 0 then
        commit()
        remaining = room - a[10]
      end
    else
      -- nothing is taken: report when this rate is whole again as it stands
      local _, _, untouched = a[6](KEYS[i], now, 0, a[7], a[8], a[9])
      reset = untouched
    end
  end
  out[#out + 1] = allowed
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = retry
end
return out

-- ratekeeper: decide a batch of decisions; each one charges all of its rates or none.
--
-- KEYS      the counters of every charge, decision after decision (the keys
--           of one decision share a hash tag)
-- ARGV[1]   '' to use the server's clock; a time in microseconds for tests with
--           a fake clock
-- ARGV[2]   whole numbers separated by spaces, per decision: consume (1 to take,
--           0 to only look), its number of charges, and six per charge:
--           algorithm, limit, window_ms, capacity, cost, shadow (1 or 0)
--           algorithm: 1 fixed_window, 2 sliding_window, 3 sliding_log, 4 token_bucket
--           (one string, not one argument per number: the client packs and
--           the server parses each argument on its own, which costs more)
--
-- Returns {now_us, then per decision: admitted, then per charge: allowed,
-- remaining, reset_us, retry_us}.
--
-- Decisions run in order, so a later one sees what an earlier one took: a
-- batch answers exactly as the same decisions sent one by one would.
--
-- Time is the server's (TIME: seconds and microseconds), so every app server
-- agrees. The sliding log counts in microseconds, the others in whole
-- milliseconds (their answers are multiplied out to microseconds).
--
-- Lua numbers are doubles: whole numbers are exact below 2^53. The bounds every
-- rate is checked against before it gets here (algorithms/bounds.py: windows
-- up to 365 days, limits, bursts and costs up to 10^12, 10^5 for the log; a
-- bucket refills within 365 days) keep every instant, count and quotient
-- below that. Products that may not be (a sliding window's previous count x
-- time left is 8.6e16 at 10^9 per day) go through muldiv, which is exact for
-- divisors below 2^40; other divisions go through idiv, also exact.
--
-- State is kept small, since Redis keeps one string per counter:
--   fixed_window    "<window index> <count>"          (the window is [i*w, (i+1)*w))
--   sliding_window  "<window index> <previous> <current>"
--   token_bucket    "<q>" or "<q> <r>": the TAT is q + r / limit ms; with r = 0
--                   (always, when window / limit is whole ms) Redis keeps an integer
--   sliding_log     a list of admission times in microseconds, oldest first
-- Evaluators do not write: they answer allowed, room, reset, retry and the
-- state (and its TTL in ms) to write if the decision is admitted.

local fmod, match, format = math.fmod, string.match, string.format
local call = redis.call

local function idiv(a, b)  -- floor(a / b) for a >= 0, b > 0, exactly
  return (a - fmod(a, b)) / b
end

-- floor(a * b / d) and (a * b) mod d for whole a, b >= 0 and 0 < d < 2^40, exactly,
-- whenever the quotient is below 2^53, however far above 2^53 the product is.
-- Below 2^53 it is one product (a double rounds a product of 2^53 or more to
-- 2^53 or more, so the test is safe). Above, a = qa * d + ra, and ra * b is
-- built from b's 12-bit digits, most significant first, its remainder kept
-- below d: each step's r * 2^12 + ra * digit is below 2^52 + 2^52, so exact.
local function muldiv(a, b, d)
  local p = a * b
  if p < 9007199254740992 then  -- 2^53
    local r = fmod(p, d)
    return (p - r) / d, r
  end
  local ra = fmod(a, d)
  local q, r = (a - ra) / d * b, 0
  local unit = 1
  while unit * 4096 <= b do unit = unit * 4096 end  -- the top 12-bit digit of b
  while unit >= 1 do
    local t = r * 4096 + ra * fmod((b - fmod(b, unit)) / unit, 4096)
    r = fmod(t, d)
    q = q + (t - r) / d * unit
    unit = unit / 4096
  end
  return q, r
end

local function num(x) return format('%.0f', x) end

-- Every call of the script makes its functions afresh, and each upvalue a
-- function captures costs about 0.1 us a call: the clock goes in as arguments
-- (now in each evaluator's unit, and the log's stamp), constants as literals.

local function fixed_window(key, now, cost, limit, window)
  local index = idiv(now, window)
  local count = 0
  local v = call('GET', key)
  if v then
    local i, c = match(v, '^(%d+) (%d+)$')
    if tonumber(i) == index then count = tonumber(c) end
  end
  local e = (index + 1) * window
  local room = limit - count
  if room < 0 then room = 0 end
  if cost <= room then
    local reset = now
    if count + cost > 0 then reset = e end
    return 1, room, reset, 0, num(index) .. ' ' .. num(count + cost), e - now
  end
  local retry = window
  if cost <= limit then retry = e - now end
  return 0, room, now + retry, retry
end

local function sliding_window(key, now, cost, limit, window)
  local index = idiv(now, window)
  local previous, current = 0, 0
  local v = call('GET', key)
  if v then
    local i, p, c = match(v, '^(%d+) (%d+) (%d+)$')
    i = tonumber(i)
    if i == index then
      previous, current = tonumber(p), tonumber(c)
    elseif i == index - 1 then
      previous = tonumber(c)
    end
  end
  local e = (index + 1) * window
  local left = e - now
  -- the previous window's share in units, rounded up: ceil(previous x left / window)
  local weight = 0
  if previous > 0 then
    local q, r = muldiv(previous, left, window)
    weight = q
    if r > 0 then weight = q + 1 end
  end
  local spare = limit - current - cost
  local room = limit - current - weight
  if spare >= weight then
    local reset
    if current + cost > 0 then reset = e + window elseif previous > 0 then reset = e else reset = now end
    return 1, room, reset, 0,
      num(index) .. ' ' .. num(previous) .. ' ' .. num(current + cost), left + window
  end
  if room < 0 then room = 0 end
  local retry
  if cost > limit then
    retry = window
  elseif spare >= 0 then
    -- the weight falls to spare once previous x left' <= spare x window
    retry = left - muldiv(spare, window, previous)
  else
    retry = left + window - muldiv(limit - cost, window, current)
  end
  return 0, room, now + retry, retry
end

local function sliding_log(key, now_us, cost, limit, window, _, stamp)
  local span = window * 1000
  local horizon = now_us - span  -- a unit stamped at or before it has left the window
  while true do
    local head = call('LINDEX', key, 0)
    if not head or tonumber(head) > horizon then break end
    call('LPOP', key)
  end
  local count = call('LLEN', key)
  local room = limit - count
  if room < 0 then room = 0 end
  if cost <= room then
    local reset = now_us
    if cost > 0 then
      reset = stamp + span
    elseif count > 0 then
      reset = tonumber(call('LINDEX', key, -1)) + span
    end
    return 1, room, reset, 0
  end
  local retry = span
  if cost <= limit then
    retry = tonumber(call('LINDEX', key, count + cost - limit - 1)) + span - now_us
  end
  return 0, room, now_us + retry, retry
end

local function log_admit(key, cost, window, stamp)
  local text = num(stamp)
  if cost == 1 then
    call('RPUSH', key, text)  -- the common case: no batch to build
  else
    local left = cost
    while left > 0 do
      local batch = {}
      for i = 1, math.min(left, 1000) do batch[i] = text end
      call('RPUSH', key, unpack(batch))
      left = left - #batch
    end
  end
  -- a ms more than the window: the key outlives its last stamp, wherever in its ms
  call('PEXPIRE', key, window + 1)
end

-- the TAT is q + r / limit ms (0 <= r < limit); every step below counts in
-- units of window / limit exactly (muldiv), so no product is ever rounded
local function token_bucket(key, now, cost, limit, window, capacity)
  local q, r = now, 0
  local v = call('GET', key)
  if v then
    local sq, sr = match(v, '^(%d+) ?(%d*)$')
    sq, sr = tonumber(sq), tonumber(sr) or 0
    if sq > now or (sq == now and sr > 0) then q, r = sq, sr end
  end
  -- units still owed, rounded up: ceil(((q - now) x limit + r) / window)
  local owed, f = muldiv(q - now, limit, window)
  f = f + r  -- below window + limit
  if f > 0 then
    local g = fmod(f, window)
    owed = owed + (f - g) / window
    if g > 0 then owed = owed + 1 end
  end
  local room = capacity - owed
  if room < 0 then room = 0 end
  if owed + cost <= capacity then
    local dq, dr = muldiv(cost, window, limit)
    local nq, nr = q + dq, r + dr
    if nr >= limit then nq, nr = nq + 1, nr - limit end
    local reset = nq
    local state = num(nq)
    if nr > 0 then
      reset = nq + 1
      state = state .. ' ' .. num(nr)
    end
    if reset <= now then state = nil end  -- nothing taken and nothing owed
    return 1, room, reset, 0, state, reset - now
  end
  local retry = window
  if cost <= capacity then
    -- until owed + cost <= capacity: the TAT less (capacity - cost) intervals, rounded up
    local kq, kr = muldiv(capacity - cost, window, limit)
    retry = q - now - kq
    if r > kr then retry = retry + 1 end
  end
  return 0, room, now + retry, retry
end

local evaluators = {fixed_window, sliding_window, sliding_log, token_bucket}

local now_us, stamp = tonumber(ARGV[1]), nil
if now_us then
  stamp = now_us  -- a fake clock is exact
else
  local t = call('TIME')
  now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  -- TIME truncates: the true instant is in [now_us, now_us + 1), so a unit is
  -- stamped at the end of that microsecond and never leaves the log early
  stamp = now_us + 1
end
local now = idiv(now_us, 1000)

local v, last = {}, 0
for w in string.gmatch(ARGV[2], '%d+') do
  last = last + 1
  v[last] = tonumber(w)
end

local out = {now_us}
local states, ttls = {}, {}
local k, a = 0, 0
while a < last do
  local consume = v[a + 1] == 1
  local n = v[a + 2]
  a = a + 2
  local head = #out + 1  -- where this decision's answers start
  local admitted = 1
  for i = 1, n do
    local b = a + (i - 1) * 6
    local code = v[b + 1]
    local clock, unit = now, 1000  -- the log counts in us, the others in ms
    if code == 3 then clock, unit = now_us, 1 end
    local allowed, room, reset, retry, state, ttl =
      evaluators[code](KEYS[k + i], clock, v[b + 5], v[b + 2], v[b + 3], v[b + 4], stamp)
    local at = head + (i - 1) * 4
    out[at + 1], out[at + 2], out[at + 3], out[at + 4] = allowed, room, reset * unit, retry * unit
    states[i], ttls[i] = state, ttl
    if allowed == 0 and v[b + 6] ~= 1 then admitted = 0 end
  end
  out[head] = admitted
  for i = 1, n do
    local at = head + (i - 1) * 4
    if out[at + 1] == 1 then
      local b = a + (i - 1) * 6
      local code, cost = v[b + 1], v[b + 5]
      if admitted == 1 and consume then
        if cost > 0 then
          if code == 3 then
            log_admit(KEYS[k + i], cost, v[b + 3], stamp)
          elseif states[i] then
            call('SET', KEYS[k + i], states[i], 'PX', ttls[i])
          end
          out[at + 2] = out[at + 2] - cost
        end
      else
        -- nothing is taken: report when this rate is whole again as it stands
        local clock, unit = now, 1000
        if code == 3 then clock, unit = now_us, 1 end
        local _, _, untouched = evaluators[code](KEYS[k + i], clock, 0, v[b + 2], v[b + 3], v[b + 4])
        out[at + 3] = untouched * unit
      end
    end
  end
  k = k + n
  a = a + n * 6
end
return out

-- Rates: the four algorithms' evaluators on Redis state (the decide script).
--
-- State is kept small, since Redis keeps one string per counter:
--   fixed_window    "<window index> <count>"          (the window is [i*w, (i+1)*w))
--   sliding_window  "<window index> <previous> <current>"
--   token_bucket    "<q>" or "<q> <r>": the TAT is q + r / limit ms; with r = 0
--                   (always, when window / limit is whole ms) Redis keeps an integer
--   sliding_log     a list of admission times in microseconds, oldest first
-- Evaluators do not write: they answer allowed, room, reset, retry and the
-- state (and its TTL in ms) to write if the decision is admitted.

-- Each upvalue a function captures costs about 0.1 us a call (prelude.lua): the
-- clock goes in as arguments (now in each evaluator's unit, and the log's
-- stamp), constants as literals.

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


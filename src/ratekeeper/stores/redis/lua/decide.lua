-- ratekeeper: decide a batch of decisions, each all or nothing. A plain
-- decision charges every rate or none (Store.apply); a step is a whole policy
-- decision (Store.decide, stores/base.py): its blocks, then its concurrency
-- leases, then its rates, then its penalty (the lease and lockout code is
-- leases.lua's and lockouts.lua's, as the single operations run it).
--
-- KEYS      per decision, in order: its counters, one per charge; for a step,
--           then two per block (the lockout's log and block), one per lease
--           (the cap's sorted set), and two for its penalty (log, block).
--           The keys of one decision share a hash tag.
-- ARGV[1]   '' to use the server's clock; a time in microseconds for tests with
--           a fake clock
-- ARGV[2]   whole numbers separated by spaces, per decision: its kind (0 look,
--           1 take: a plain decision; 2 look, 3 take: a step), its number of
--           charges, for a step its numbers of blocks, of leases and of
--           penalties (0 or 1); six per charge: algorithm, limit, window_ms,
--           capacity, cost, flags (1 shadow, + 2 peeked: decided, never
--           consumed, Step.peeks), the algorithm being 1 fixed_window,
--           2 sliding_window, 3 sliding_log or 4 token_bucket; for a step then
--           two per lease: cap, ttl_ms, and five for its penalty: threshold,
--           window_ms, block_ms, max_block_ms (0: none), streak_memory_ms
--           (one string, not one argument per number: the client packs and
--           the server parses each argument on its own, which costs more)
-- ARGV[3..] words, step after step: a lease id per lease (made by the client)
--           when the step takes, and its penalty's escalation
--
-- Returns {now_us, then per decision:
--   plain: admitted, then per charge: allowed, remaining, reset_us, retry_us;
--   step:  outcome (0 admitted, 1 refused by a rate, 2 by a cap, 3 blocked),
--          index (the block's or cap's that answered, from 0; else -1),
--          until_ms, failures, streak (the block that answered, or the
--          penalty's after the failure of a refusal; else 0 0 0),
--          then per charge as a plain decision (zeros if a block or cap answered)}
--
-- Decisions run in order, so a later one sees what an earlier one took: a
-- batch answers exactly as the same decisions sent one by one would.
--
-- Time is the server's TIME, read once per call. The sliding log counts in
-- microseconds; the other rates, leases and lockouts in whole milliseconds
-- (rate answers are multiplied out to microseconds; lease expiries and block
-- times stay in ms, as lease_*.lua and lockout_failure.lua keep them).

--! include prelude
--! include rates

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
local step  -- the lease and lockout functions, made for the first step of a call
local k, a, s = 0, 0, 2  -- the keys, numbers and ARGV words used so far
while a < last do
  local kind, n = v[a + 1], v[a + 2]
  local consume = kind == 1 or kind == 3
  local head = #out + 1  -- where this decision's answers start
  -- a step's: where its charges' answers start (after 5 of its own), whether a
  -- block or a cap answered it, where its caps' and penalty's keys and numbers
  -- start, its first word, where the next decision starts
  local base, answered, kl, vl, kp, vp, w, nk, na = head
  a = a + 2
  if kind >= 2 then
    if not step then
      --! include leases
      --! include lockouts
      step = {held = leases_held, take = lease_take, block_of = block_of, fail = record_failure}
    end
    local nb, nl, np = v[a + 1], v[a + 2], v[a + 3]
    a = a + 3
    base = head + 4
    kl, vl = k + n + 2 * nb, a + n * 6
    kp, vp, w = kl + nl, vl + 2 * nl, s
    nk, na = kp + 2 * np, vp + 5 * np
    if consume then s = s + nl end
    s = s + np
    out[head], out[head + 1], out[head + 2], out[head + 3], out[head + 4] = 0, -1, 0, 0, 0
    -- 1. the blocks: the first one running answers
    for i = 1, nb do
      local key = KEYS[k + n + 2 * i]
      local until_, streak = step.block_of(key)
      if until_ > now then
        out[head], out[head + 1], out[head + 2] = 3, i - 1, until_
        out[head + 3], out[head + 4] = call('LLEN', KEYS[k + n + 2 * i - 1]), streak
        answered = true
        break
      end
    end
    -- 2. the caps, all looked at before a slot is taken (none to give back):
    -- the first full one answers
    if not answered and nl > 0 then
      local asked = {}
      for j = 1, nl do
        local key = KEYS[kl + j]
        local held = step.held(key, now, consume) + (asked[key] or 0)
        if held >= v[vl + 2 * j - 1] then
          out[head], out[head + 1] = 2, j - 1
          answered = true
          break
        end
        asked[key] = (asked[key] or 0) + 1
      end
    end
    if answered then
      for i = 1, 4 * n do out[base + i] = 0 end
    end
  end
  if not answered then
    -- 3. the rates
    local admitted = 1
    for i = 1, n do
      local b = a + (i - 1) * 6
      local code = v[b + 1]
      local clock, unit = now, 1000  -- the log counts in us, the others in ms
      if code == 3 then clock, unit = now_us, 1 end
      local allowed, room, reset, retry, state, ttl =
        evaluators[code](KEYS[k + i], clock, v[b + 5], v[b + 2], v[b + 3], v[b + 4], stamp)
      local at = base + (i - 1) * 4
      out[at + 1], out[at + 2], out[at + 3], out[at + 4] = allowed, room, reset * unit, retry * unit
      states[i], ttls[i] = state, ttl
      if allowed == 0 and v[b + 6] % 2 == 0 then admitted = 0 end
    end
    if kind < 2 then
      out[head] = admitted
    elseif admitted == 0 then
      -- 4. refused by a rate: no slot was taken; the penalty counts a failure
      out[head] = 1
      if consume and nk > kp then
        out[head + 2], out[head + 3], out[head + 4] = step.fail(KEYS[kp + 1], KEYS[kp + 2],
          now, v[vp + 1], v[vp + 2], v[vp + 3], tonumber(ARGV[w + kp - kl + 1]), v[vp + 4],
          v[vp + 5])
      end
    elseif consume then
      for j = 1, kp - kl do
        step.take(KEYS[kl + j], ARGV[w + j], now + v[vl + 2 * j], now)
      end
    end
    for i = 1, n do
      local at = base + (i - 1) * 4
      if out[at + 1] == 1 then
        local b = a + (i - 1) * 6
        local code, cost = v[b + 1], v[b + 5]
        if admitted == 1 and consume and v[b + 6] < 2 then
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
          local _, _, untouched =
            evaluators[code](KEYS[k + i], clock, 0, v[b + 2], v[b + 3], v[b + 4])
          out[at + 3] = untouched * unit
        end
      end
    end
  end
  if kind < 2 then
    k, a = k + n, a + n * 6
  else
    k, a = nk, na
  end
end
return out

-- ratekeeper's scripts are built from shared sources (stores/redis/scripts.py):
-- Redis scripts cannot include one another, so a line `--! include <name>`
-- is replaced by lua/<name>.lua when the scripts are loaded. Every script
-- includes this one first.
--
-- Each call of a script makes its functions afresh, at about 0.1 us a
-- function (more with each upvalue it captures): a script makes only what it
-- needs, and the decide script makes the lease and lockout functions only for
-- a call that carries a step (it includes them in that branch).
--
-- Lua numbers are doubles: whole numbers are exact below 2^53. The bounds every
-- rate is checked against before it gets here (algorithms/bounds.py: windows
-- up to 365 days, limits, bursts and costs up to 10^12, 10^5 for the log; a
-- bucket refills within 365 days) keep every instant, count and quotient
-- below that. Products that may not be (a sliding window's previous count x
-- time left is 8.6e16 at 10^9 per day) go through muldiv, which is exact for
-- divisors below 2^40; other divisions go through idiv, also exact.

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

-- The server's clock, for the lease and lockout scripts: whole ms of TIME (the
-- decide script reads TIME itself, in microseconds).

local function server_ms()
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + idiv(tonumber(t[2]), 1000)
end

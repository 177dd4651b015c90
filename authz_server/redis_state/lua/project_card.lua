-- project_card.lua: write a card's projection, never moving it backwards.
--
-- Card administration writes Postgres first, then this projection. Two administrative calls
-- on one card can reach Redis in either order; comparing versions inside one atomic step
-- keeps the projection at the newest policy_version.
--
-- KEYS[1] card projection hash
-- ARGV[1] policy_version  ARGV[2] state (CardState number)  ARGV[3] currency
-- ARGV[4] account_ref     ARGV[5] controls JSON
-- Returns 1 if written, 0 if the projection already held this version or a newer one.

local current = tonumber(redis.call("HGET", KEYS[1], "v") or "0")
if current >= tonumber(ARGV[1]) then
  return 0
end
redis.call("HSET", KEYS[1], "v", ARGV[1], "st", ARGV[2], "cur", ARGV[3], "acct", ARGV[4], "ctl", ARGV[5])
return 1

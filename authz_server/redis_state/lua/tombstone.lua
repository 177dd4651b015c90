-- tombstone.lua: make a fail-closed answer stick.
--
-- The server answered DECLINE / SYSTEM_UNAVAILABLE because its decision script did not
-- answer within the budget. That script may still run, or may already have run and its
-- reply been lost. This script makes the stored answer for the authorization id agree with
-- what the caller was told: if nothing is stored it stores the fail-closed decline; if the
-- timed-out attempt itself stored an answer, it turns that answer into the fail-closed
-- decline and, for an approval, gives back what it reserved. Answers stored by any other
-- attempt, and answers an identical retry has already been given, are left alone. Atomic so that no decision can slip in between the check and the
-- write.
--
-- KEYS[1] replay record hash   KEYS[2] card usage hash   KEYS[3] the card shard's decision stream
-- KEYS[4] the shard's holds set (a voided approval's hold leaves it); ARGV[6] its member
-- ARGV[1] request fingerprint  ARGV[2] attempt id of the timed-out call
-- ARGV[3] decided_at_ms        ARGV[4] replay retention, seconds
-- ARGV[5] decision record payload (JSON)
-- Returns "tombstoned" (nothing was stored), "voided" (our attempt's answer was replaced) or "kept".

local DECLINE, APPROVE, SYSTEM_UNAVAILABLE = "2", "1", "12"
local stored = redis.call("HMGET", KEYS[1], "f", "d", "n", "a", "b", "v", "r", "h", "dl")

if not stored[1] then
  redis.call("XADD", KEYS[3], "*", "k", "decision", "p", ARGV[5], "d", DECLINE, "r", SYSTEM_UNAVAILABLE,
    "v", "0", "t", ARGV[3], "x", "", "n", ARGV[2], "b", "", "f", ARGV[1])
  redis.call("HSET", KEYS[1], "f", ARGV[1], "d", DECLINE, "r", SYSTEM_UNAVAILABLE, "v", "0", "t", ARGV[3],
    "x", "", "n", ARGV[2], "a", "0", "b", "", "p", ARGV[5])
  redis.call("EXPIRE", KEYS[1], tonumber(ARGV[4]))
  return "tombstoned"
end
-- Kept: another attempt's answer, an answer already fail-closed, or one already replayed to a
-- caller (an identical retry was told it, so it stands).
if stored[1] ~= ARGV[1] or stored[3] ~= ARGV[2] or stored[7] == SYSTEM_UNAVAILABLE or stored[9] == "1" then
  return "kept"
end

-- Our own attempt decided after we gave up on it: void it.
redis.call("XADD", KEYS[3], "*", "k", "void", "p", ARGV[5], "d", DECLINE, "r", SYSTEM_UNAVAILABLE,
  "v", stored[6], "t", ARGV[3], "x", "", "n", ARGV[2], "b", stored[5], "f", ARGV[1])
if stored[2] == APPROVE and stored[5] ~= "" then
  local release = "-" .. (stored[8] or stored[4])  -- what is still held (reversals may have released some)
  for name, period in string.gmatch(stored[5], "([^;=]+)=([^;]+)") do
    if redis.call("HGET", KEYS[2], name .. "|p") == period then
      redis.call("HINCRBY", KEYS[2], name .. "|a", release)
      redis.call("HINCRBY", KEYS[2], name .. "|c", -1)
    end
  end
end
redis.call("HSET", KEYS[1], "d", DECLINE, "r", SYSTEM_UNAVAILABLE, "x", "", "a", "0", "b", "", "h", "0")
redis.call("ZREM", KEYS[4], ARGV[6])
return "voided"

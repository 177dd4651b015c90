-- reverse.lua: release all or part of an approval's remaining hold, atomically.
--
-- Why atomic: the check of what is still held, the release of the window counters the
-- approval was counted in, the reversal's replay record and its hand-off to the ledger (the
-- stream entry) must be one step, or two reversals (or a reversal and a retry) could release
-- more than was held. Every read and check comes before the first write; the stream append
-- is the first write.
--
-- KEYS[1] the authorization's replay record   KEYS[2] the card's usage (window counter) hash
-- KEYS[3] the card shard's decision stream     KEYS[4] the reversal's replay record
-- KEYS[5] the shard's holds set (a fully released hold leaves it)
-- ARGV[1] reversal_id   ARGV[2] authorization_id   ARGV[3] amount_minor requested ("0": all)
-- ARGV[4] the current period of every window, "D=20261124;W=2026W48;M=202611;Y=2026;L=0"
-- ARGV[5] reversed_at_ms   ARGV[6] replay retention, seconds   ARGV[7] payload (JSON)
-- ARGV[8] the hold's member in the holds set
-- The authorization's record holds d decision, a approved amount, h remaining hold (absent
-- until the first release: then a), b the buckets it reserved ("D=20261124;W=..."), u what
-- its windows count (absent until a clearing: then the hold).
--
-- Returns {"D", released, remaining} | {"R", released, remaining} (replay of this reversal)
--       | {"X"} (reversal_id reused differently) | {"N"} (no such authorization)
--       | {"P", why} (not approved, or nothing / not that much left to release)

local stored = redis.call("HMGET", KEYS[4], "auth", "amt", "rel", "rem")
if stored[1] then
  if stored[1] == ARGV[2] and stored[2] == ARGV[3] then
    return {"R", stored[3], stored[4]}
  end
  return {"X"}
end

local auth = redis.call("HMGET", KEYS[1], "d", "a", "h", "b", "u")
if not auth[1] then
  return {"N"}
end
if auth[1] ~= "1" then
  return {"P", "the authorization was not approved; there is no hold to release"}
end
local held = tonumber(auth[3] or auth[2])
if held <= 0 then
  return {"P", "nothing is left to release"}
end
local amount = tonumber(ARGV[3])
if amount == 0 then
  amount = held
end
if amount > held then
  return {"P", "amount_minor " .. ARGV[3] .. " is more than the remaining hold " .. tostring(held)}
end
local remaining = held - amount
local released_text, remaining_text = string.format("%d", amount), string.format("%d", remaining)
-- What the windows count for this approval (u; before any clearing, the hold itself): it gives
-- back the amount released, and the approval's count once nothing is counted any more.
local counted = tonumber(auth[5] or tostring(held))
local counted_after = math.max(0, counted - amount)
local count_change = ((counted_after > 0) and 1 or 0) - ((counted > 0) and 1 or 0)

local current = {}
for letter, period in string.gmatch(ARGV[4], "([^;=]+)=([^;]+)") do
  current[letter] = period
end
local buckets = auth[4] or ""

redis.call("XADD", KEYS[3], "*", "k", "reversal", "p", ARGV[7], "rid", ARGV[1], "amt", released_text,
  "rem", remaining_text, "t", ARGV[5])
for name, period in string.gmatch(buckets, "([^;=]+)=([^;]+)") do
  -- Only windows still current hold this approval's usage; a rolled-over window starts from zero.
  if current[string.sub(name, 1, 1)] == period and redis.call("HGET", KEYS[2], name .. "|p") == period then
    redis.call("HINCRBY", KEYS[2], name .. "|a", string.format("%d", counted_after - counted))
    if count_change ~= 0 then
      redis.call("HINCRBY", KEYS[2], name .. "|c", count_change)
    end
  end
end
redis.call("HSET", KEYS[1], "h", remaining_text)
if remaining == 0 then
  redis.call("ZREM", KEYS[5], ARGV[8])
end
if auth[5] then
  redis.call("HSET", KEYS[1], "u", string.format("%d", counted_after))
end
redis.call("HSET", KEYS[4], "auth", ARGV[2], "amt", ARGV[3], "rel", released_text, "rem", remaining_text)
redis.call("EXPIRE", KEYS[4], tonumber(ARGV[6]))
return {"D", released_text, remaining_text}

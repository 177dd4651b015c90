-- expire.lua: release what is left of an approval's hold once it has expired, atomically.
--
-- Why atomic: the check of what is still held, the release of the window counters it was
-- counted in and the hand-off to the ledger must be one step, or a clearing or reversal
-- racing the sweeper could release twice; several sweepers may run at once and only one of
-- them finds anything to release.
--
-- KEYS[1] the authorization's record   KEYS[2] the card's usage hash
-- KEYS[3] the card shard's stream      KEYS[4] the shard's holds set
-- ARGV[1] the holds member "<tenant>|<authorization id>|<card id>"   ARGV[2] now (ms)
-- ARGV[3] current periods "D=..;W=..;M=..;Y=..;L=0"   ARGV[4] payload (JSON)
-- Returns {"E", released} | {"-"} (nothing left to release, or not due: the member is dropped
-- when nothing is left)

local due = redis.call("ZSCORE", KEYS[4], ARGV[1])
if not due then
  return {"-"}
end
if tonumber(due) > tonumber(ARGV[2]) then
  return {"-"}
end
local auth = redis.call("HMGET", KEYS[1], "d", "a", "h", "b", "u")
local held = auth[1] == "1" and tonumber(auth[3] or auth[2]) or 0
if held <= 0 then
  redis.call("ZREM", KEYS[4], ARGV[1])
  return {"-"}
end
local counted = tonumber(auth[5] or tostring(held))
local counted_after = math.max(0, counted - held)
local count_change = ((counted_after > 0) and 1 or 0) - ((counted > 0) and 1 or 0)
local current = {}
for letter, period in string.gmatch(ARGV[3], "([^;=]+)=([^;]+)") do
  current[letter] = period
end

redis.call("XADD", KEYS[3], "*", "k", "expiry", "p", ARGV[4], "amt", string.format("%d", held), "t", ARGV[2])
for name, period in string.gmatch(auth[4] or "", "([^;=]+)=([^;]+)") do
  if current[string.sub(name, 1, 1)] == period and redis.call("HGET", KEYS[2], name .. "|p") == period then
    redis.call("HINCRBY", KEYS[2], name .. "|a", string.format("%d", counted_after - counted))
    if count_change ~= 0 then
      redis.call("HINCRBY", KEYS[2], name .. "|c", count_change)
    end
  end
end
redis.call("HSET", KEYS[1], "h", "0")
if auth[5] then
  redis.call("HSET", KEYS[1], "u", string.format("%d", counted_after))
end
redis.call("ZREM", KEYS[4], ARGV[1])
return {"E", string.format("%d", held)}

-- clear.lua: match one clearing record to its authorization's hold and post it, atomically.
--
-- Why atomic: what is left of the hold, the window counters, the clearing's replay record and
-- its hand-off to the ledger (the stream entry) must move together, so that a clearing racing
-- a reversal (or a retried clearing) can never settle or release more than was held. Every
-- read and check comes before the first write; the stream append is the first write.
--
-- KEYS[1] the authorization's record (a key that does not exist when there is none)
-- KEYS[2] the card's usage hash   KEYS[3] the card shard's stream   KEYS[4] the clearing's record
-- KEYS[5] the shard's holds set (a hold cleared to nothing leaves it)
-- ARGV[1] clearing_id   ARGV[2] fingerprint of the clearing record
-- ARGV[3] mode: "auth" (match KEYS[1]), "force" (no authorization), "late" (authorization
--         known to Postgres only, its hold long gone), "refund"
-- ARGV[4] amount_minor C   ARGV[5] is_final "1"/"0"
-- ARGV[6] current periods "D=..;W=..;M=..;Y=..;L=0"   ARGV[7] cleared_at_ms
-- ARGV[8] retention, seconds   ARGV[9] payload (JSON)   ARGV[10] review tolerance, basis points
-- ARGV[11] the hold's member in the holds set
-- The authorization's record: d decision, a approved, h remaining hold (absent: a), b buckets,
-- u amount its windows count (absent: the hold), cl cleared so far.
--
-- Returns {"D"|"R", outcome, from_hold, from_balance, released, delta, review ("1"/"0")}
--       | {"X"} (clearing_id reused with another record) | {"N"} (the authorization vanished)
-- outcome: 1 MATCHED, 2 MISMATCHED, 3 FORCE_POSTED, 4 LATE_CAPTURE, 5 REFUNDED

local MATCHED, MISMATCHED, FORCE_POSTED, LATE_CAPTURE, REFUNDED = "1", "2", "3", "4", "5"

local stored = redis.call("HMGET", KEYS[4], "f", "o", "fh", "fb", "rl", "dt", "rv")
if stored[1] then
  if stored[1] == ARGV[2] then
    return {"R", stored[2], stored[3], stored[4], stored[5], stored[6], stored[7]}
  end
  return {"X"}
end

local amount = tonumber(ARGV[4])
local final = ARGV[5] == "1"
local mode = ARGV[3]
local outcome, from_hold, from_balance, released, delta, review = nil, 0, 0, 0, 0, "0"
local auth = nil
local counted_before, counted_after, held_after, cleared_after = nil, nil, nil, nil

if mode == "auth" then
  auth = redis.call("HMGET", KEYS[1], "d", "a", "h", "b", "u", "cl")
  if not auth[1] then
    return {"N"}
  end
  if auth[1] ~= "1" then
    mode = "force"  -- a declined or referred authorization holds nothing: the money moved anyway
    auth = nil
  end
end

if mode == "refund" then
  outcome = REFUNDED
elseif mode == "force" then
  outcome, from_balance, review = FORCE_POSTED, amount, "1"
elseif mode == "late" then
  outcome, from_balance, review = LATE_CAPTURE, amount, "1"
else
  local approved = tonumber(auth[2])
  local held = tonumber(auth[3] or auth[2])
  counted_before = tonumber(auth[5] or tostring(held))
  cleared_after = tonumber(auth[6] or "0") + amount
  if held == 0 then
    -- Reversed, expired or already settled: a late capture, from the customer's balance.
    outcome, from_balance, review, held_after = LATE_CAPTURE, amount, "1", 0
    counted_after = cleared_after
  else
    from_hold = math.min(amount, held)
    from_balance = amount - from_hold
    delta = amount - held
    outcome = (delta == 0) and MATCHED or MISMATCHED
    held_after = held - from_hold
    if final then
      released, held_after = held_after, 0
    end
    -- Over-captures, and the final difference, beyond the tolerance go to review.
    if (final or delta > 0) and math.abs(delta) * 10000 > tonumber(ARGV[10]) * approved then
      review = "1"
    end
    -- Window counters follow the money once the clearing is final.
    counted_after = final and cleared_after or counted_before
  end
end

local text = function(n) return string.format("%d", n) end
redis.call("XADD", KEYS[3], "*", "k", "clearing", "p", ARGV[9], "o", outcome, "fh", text(from_hold),
  "fb", text(from_balance), "rl", text(released), "dt", text(delta), "rv", review,
  "hold", held_after and text(held_after) or "", "t", ARGV[7], "f", ARGV[2])

if auth then
  local change = counted_after - counted_before
  local count_change = ((counted_after > 0) and 1 or 0) - ((counted_before > 0) and 1 or 0)
  if change ~= 0 or count_change ~= 0 then
    local current = {}
    for letter, period in string.gmatch(ARGV[6], "([^;=]+)=([^;]+)") do
      current[letter] = period
    end
    for name, period in string.gmatch(auth[4] or "", "([^;=]+)=([^;]+)") do
      if current[string.sub(name, 1, 1)] == period and redis.call("HGET", KEYS[2], name .. "|p") == period then
        redis.call("HINCRBY", KEYS[2], name .. "|a", text(change))
        redis.call("HINCRBY", KEYS[2], name .. "|c", count_change)
      end
    end
  end
  redis.call("HSET", KEYS[1], "h", text(held_after), "u", text(counted_after), "cl", text(cleared_after))
  if held_after == 0 then
    redis.call("ZREM", KEYS[5], ARGV[11])
  end
end
redis.call("HSET", KEYS[4], "f", ARGV[2], "o", outcome, "fh", text(from_hold), "fb", text(from_balance),
  "rl", text(released), "dt", text(delta), "rv", review)
redis.call("EXPIRE", KEYS[4], tonumber(ARGV[8]))
return {"D", outcome, text(from_hold), text(from_balance), text(released), text(delta), review}

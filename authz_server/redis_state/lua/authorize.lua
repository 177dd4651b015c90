-- authorize.lua: decide one authorization, atomically.
--
-- Why atomic: the replay check, the re-check of the card's policy version, the window-limit
-- checks, the reservation, the replay record and the hand-off to the ledger (the stream
-- entry) must happen as one step, or two concurrent calls could both fit under a limit, a
-- retry could reserve twice, or a hold could exist that the ledger never hears of.
-- Every read and check comes before the first write (a failing redis.call does not undo
-- earlier writes); the stream append is the first write.
--
-- KEYS[1] card projection hash      KEYS[2] card usage (window counter) hash
-- KEYS[3] replay record hash        KEYS[4] the card shard's decision stream
-- KEYS[5] the card's one-time review override (ReviewService; usually absent)
-- KEYS[6] the shard's live holds, scored by expiry (the expiry sweeper reads it)
-- KEYS[7] for an incremental authorization: the original's record (otherwise unused)
-- The replay record (f fingerprint, d decision, r reason, v policy_version, t decided_at_ms,
-- x exceeded-limit label, n attempt, a amount reserved, b buckets reserved, p payload) and the
-- stream entry (k "decision", p, d, r, v, t, x, n, b, f) carry the same facts.
-- ARGV[1]  request fingerprint (hash of every AuthorizeRequest field)
-- ARGV[2]  policy_version the caller planned against ("0": the caller has no policy cached)
-- ARGV[3]  sent_at_ms, the caller's wall clock when it sent this call
-- ARGV[4]  stale_ms: a script starting later than sent_at_ms + stale_ms refuses to decide
-- ARGV[5]  static decline reason (Reason number), "0" when the static rules passed
-- ARGV[6]  label of the PER_AUTHORIZATION limit that failed, "" if none
-- ARGV[7]  "1": refer (REVIEW) when the limits pass; "0": approve
-- ARGV[8]  amount_minor
-- ARGV[9]  decided_at_ms (business clock)
-- ARGV[10] replay record retention, seconds
-- ARGV[11] stream backlog bound (entries)
-- ARGV[12] decision record payload (JSON built by the caller; copied into the stream)
-- ARGV[13] attempt id, unique per call (a fail-closed tombstone voids only its own attempt)
-- ARGV[14] B, the number of counter buckets; then B pairs: bucket name, current period id
-- then C, the number of limit checks; then C quads: bucket index (1-based), kind "a"|"c", cap, label
-- then: merchant id, mcc, country (matched against an override), the hold's expiry (ms), the
-- replay record's lifetime for an approval (s; it must outlive the hold), the holds member,
-- the original authorization id of an incremental one ("" otherwise), the card id
--
-- Returns one of
--   {"D", decision, reason, policy_version, decided_at_ms, exceeded_label}   decided now
--   {"R", decision, reason, policy_version, decided_at_ms, exceeded_label}   replay of a stored answer
--   {"X"}                                      same id, different request
--   {"S", version, state, currency, account_ref, controls_json}   caller's policy is stale: re-plan
--   {"B"}  backlog bound reached: a fail-closed decline was recorded, nothing appended
--   {"L"}  started too late: a fail-closed decline was recorded and appended

local APPROVE, DECLINE, REVIEW = "1", "2", "3"
local EXACT_MAX = 9007199254740992  -- 2^53: below it a Lua number holds every integer exactly
local APPROVED, CARD_NOT_FOUND, SPEND_LIMIT_EXCEEDED, COUNT_LIMIT_EXCEEDED, REVIEW_REQUIRED, SYSTEM_UNAVAILABLE =
  "1", "2", "9", "10", "11", "12"

local fingerprint = ARGV[1]
local stored_fingerprint = redis.call("HGET", KEYS[3], "f")
if stored_fingerprint then
  if stored_fingerprint == fingerprint then
    local stored = redis.call("HMGET", KEYS[3], "d", "r", "v", "t", "x")
    -- This answer is now delivered to a caller: a fail-closed tombstone of the attempt that
    -- stored it must no longer void it (tombstone.lua reads "dl").
    redis.call("HSET", KEYS[3], "dl", "1")
    return {"R", stored[1], stored[2], stored[3], stored[4], stored[5]}
  end
  return {"X"}
end

local decided_at = ARGV[9]
local retention = tonumber(ARGV[10])
local attempt = ARGV[13]

local function record(decision, reason, version, label, amount, buckets, lifetime)
  redis.call("HSET", KEYS[3], "f", fingerprint, "d", decision, "r", reason, "v", version, "t", decided_at,
    "x", label, "n", attempt, "a", amount, "b", buckets, "p", ARGV[12])
  redis.call("EXPIRE", KEYS[3], lifetime or retention)
end

local function append(decision, reason, version, label, buckets)
  redis.call("XADD", KEYS[4], "*", "k", "decision", "p", ARGV[12], "d", decision, "r", reason, "v", version,
    "t", decided_at, "x", label, "n", attempt, "b", buckets, "f", fingerprint)
end

if redis.call("XLEN", KEYS[4]) >= tonumber(ARGV[11]) then
  record(DECLINE, SYSTEM_UNAVAILABLE, "0", "", "0", "")
  return {"B"}
end

local now = redis.call("TIME")
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now_ms > tonumber(ARGV[3]) + tonumber(ARGV[4]) then
  append(DECLINE, SYSTEM_UNAVAILABLE, "0", "", "")
  record(DECLINE, SYSTEM_UNAVAILABLE, "0", "", "0", "")
  return {"L"}
end

-- Only the version on the way to a decision: the rest of the projection (its controls are the
-- biggest field) travels only to a caller whose cached policy is stale.
local version = redis.call("HGET", KEYS[1], "v")
if not version then
  append(DECLINE, CARD_NOT_FOUND, "0", "", "")
  record(DECLINE, CARD_NOT_FOUND, "0", "", "0", "")
  return {"D", DECLINE, CARD_NOT_FOUND, "0", decided_at, ""}
end
if version ~= ARGV[2] then
  local card = redis.call("HMGET", KEYS[1], "v", "st", "cur", "acct", "ctl")
  return {"S", card[1], card[2], card[3], card[4], card[5]}
end
if ARGV[5] ~= "0" then
  append(DECLINE, ARGV[5], version, ARGV[6], "")
  record(DECLINE, ARGV[5], version, ARGV[6], "0", "")
  return {"D", DECLINE, ARGV[5], version, decided_at, ARGV[6]}
end

-- Window limits: read every bucket's counters once; a bucket whose period id is not the
-- current one belongs to an earlier window and counts as zero.
local amount = tonumber(ARGV[8])
local bucket_count = tonumber(ARGV[14])
local names, periods, fields = {}, {}, {}
for i = 1, bucket_count do
  local name = ARGV[13 + 2 * i]
  names[i] = name
  periods[i] = ARGV[14 + 2 * i]
  fields[#fields + 1] = name .. "|p"
  fields[#fields + 1] = name .. "|a"
  fields[#fields + 1] = name .. "|c"
end
local used_amount, used_count = {}, {}
if bucket_count > 0 then
  local values = redis.call("HMGET", KEYS[2], unpack(fields))
  for i = 1, bucket_count do
    if values[3 * i - 2] == periods[i] then
      used_amount[i] = tonumber(values[3 * i - 1]) or 0
      used_count[i] = tonumber(values[3 * i]) or 0
    else
      used_amount[i], used_count[i] = 0, 0
    end
  end
end

local at = 15 + 2 * bucket_count
local check_count = tonumber(ARGV[at])
local tail = at + 1 + 4 * check_count
local merchant_id, mcc, country = ARGV[tail], ARGV[tail + 1], ARGV[tail + 2]
local expires_at, approval_lifetime, holds_member = ARGV[tail + 3], tonumber(ARGV[tail + 4]), ARGV[tail + 5]
local incremental_of, card_id = ARGV[tail + 6], ARGV[tail + 7]
local original = nil
if incremental_of ~= "" then
  -- The original must be an approval of this card that still holds something (checked before
  -- any write; its payload names its card in the canonical JSON the server writes).
  original = redis.call("HMGET", KEYS[7], "d", "a", "h", "u", "p")
  if not original[1] then
    return {"I", "incremental_of: no such authorization"}
  end
  if original[1] ~= APPROVE or not string.find(original[5], '"card_id":"' .. card_id .. '"', 1, true) then
    return {"I", "incremental_of: not an approval of this card"}
  end
  if tonumber(original[3] or original[2]) <= 0 then
    return {"I", "incremental_of: the original holds nothing any more"}
  end
end
for c = 0, check_count - 1 do
  local base = at + 1 + 4 * c
  local b, kind, cap, label = tonumber(ARGV[base]), ARGV[base + 1], tonumber(ARGV[base + 2]), ARGV[base + 3]
  local failed = nil
  if kind == "a" and used_amount[b] + amount > cap then
    failed = SPEND_LIMIT_EXCEEDED
  elseif kind == "c" and used_count[b] + 1 > cap then
    failed = COUNT_LIMIT_EXCEEDED
  end
  if failed then
    append(DECLINE, failed, version, label, "")
    record(DECLINE, failed, version, label, "0", "")
    return {"D", DECLINE, failed, version, decided_at, label}
  end
end

local overridden = ""
if ARGV[7] == "1" then
  -- An operator approved this card, merchant and amount (or more) in review: approve once,
  -- past the review threshold only (state, controls and limits were checked above).
  local override = redis.call("HMGET", KEYS[5], "merchant_id", "mcc", "country", "max_minor", "review_id", "used")
  if override[1] and not override[6] and override[1] == merchant_id and override[2] == mcc
      and override[3] == country and tonumber(override[4]) >= amount then
    overridden = override[5]
  else
    append(REVIEW, REVIEW_REQUIRED, version, "", "")
    record(REVIEW, REVIEW_REQUIRED, version, "", "0", "")
    return {"D", REVIEW, REVIEW_REQUIRED, version, decided_at, ""}
  end
end

-- Approve: reserve the amount and one approval in every bucket, then record. Every bucket's
-- new counters go in one HSET, written with %d: exact while a window's usage stays below 2^53
-- minor units, the same bound as the comparisons above (docs/decisions.md). A bucket at or past
-- that bound is changed with HINCRBY instead (exact int64 arithmetic in Redis).
local reserved = {}
for i = 1, bucket_count do
  reserved[#reserved + 1] = names[i] .. "=" .. periods[i]
end
local reserved_text = table.concat(reserved, ";")
redis.call("XADD", KEYS[4], "*", "k", "decision", "p", ARGV[12], "d", APPROVE, "r", APPROVED, "v", version,
  "t", decided_at, "x", "", "n", attempt, "b", reserved_text, "f", fingerprint, "e", expires_at, "ov", overridden,
  "inc", incremental_of)
if overridden ~= "" then
  -- Marked, not deleted: a retried ResolveReview must not arm it again (services/reviews.py).
  redis.call("HSET", KEYS[5], "used", attempt)
end
-- An increment counts as amount on the purchase already counted, not as another approval.
local approvals = original and 0 or 1
if original then
  local held = tonumber(original[3] or original[2])
  redis.call("HSET", KEYS[7], "h", string.format("%d", held + amount))
  if original[4] then
    redis.call("HSET", KEYS[7], "u", string.format("%d", tonumber(original[4]) + amount))
  end
else
  redis.call("ZADD", KEYS[6], expires_at, holds_member)
end
local counters = {}
for i = 1, bucket_count do
  local new_amount = used_amount[i] + amount
  if new_amount < EXACT_MAX then
    counters[#counters + 1] = names[i] .. "|p"
    counters[#counters + 1] = periods[i]
    counters[#counters + 1] = names[i] .. "|a"
    counters[#counters + 1] = string.format("%d", new_amount)
    counters[#counters + 1] = names[i] .. "|c"
    counters[#counters + 1] = string.format("%d", used_count[i] + approvals)
  else
    redis.call("HINCRBY", KEYS[2], names[i] .. "|a", ARGV[8])
    redis.call("HINCRBY", KEYS[2], names[i] .. "|c", approvals)
  end
end
if #counters > 0 then
  redis.call("HSET", KEYS[2], unpack(counters))
end
record(APPROVE, APPROVED, version, "", ARGV[8], reserved_text, approval_lifetime)
if original then
  redis.call("HSET", KEYS[3], "h", "0", "inc", incremental_of)  -- its hold lives on the original
end
return {"D", APPROVE, APPROVED, version, decided_at, ""}

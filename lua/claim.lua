-- claim.lua: the atomic claim step, for a batch of claims on ONE campaign.
-- Time window -> per-user limit -> stock (or next packet) -> deduct -> record the
-- user -> enqueue the claim event: all in this one script, so there is never a moment
-- where stock is gone and its claim is not yet queued.
--
-- Every key is of ONE bucket of the campaign: tag {c:ID}, or {c:ID:bB-K} (engine/src/buckets.rs).
-- KEYS[1]  {c:ID}:state    hash: kind (f|r), limit, starts, ends, remaining, seq, claims, sold,
--          cents, gen (which load wrote it), rolled_back (set when a rollback is found)
-- KEYS[2]  {c:ID}:users    hash: user id -> "held|claim id|quantity|amount|accepted ms|packet idx"
-- KEYS[3]  {c:ID}:packets  list: unclaimed red packets "idx:amount" (red packet only)
-- KEYS[4]  {c:ID}:claims   stream: claim events for the workers, one field
--          e = "campaign id|claim id|user id|quantity|amount|packet idx|accepted ms[|request id]"
--          (user ids and request ids cannot contain '|': both are limited to [A-Za-z0-9_.-];
--          the request id is left out when the claim has none)
-- KEYS[5]  {c:ID}:batch:BATCH  string: the reply of the batch BATCH, kept ARGV[6] ms (see below)
-- KEYS[6]  {c:ID}:orders     hash: claim id -> order record (flash sale with a payment window)
-- KEYS[7]  {c:ID}:deadlines  sorted set: pending orders' claim ids by pay-by ms
--          With a payment window (state field `window`, ms), each accepted claim is also
--          a pending order: recorded, indexed by its deadline, counted in `pending`, and
--          its event ends with `|request id or empty|pay by ms` (lua/order.lua closes it).
-- ARGV[1]  now, unix milliseconds
-- ARGV[2]  campaign id (in the events)
-- ARGV[3]  the caller's floor: the gen it last saw ('' when it saw none)
-- ARGV[4]  the caller's floor: the highest seq it saw under that gen (0 when none)
-- ARGV[5]  the batch id (random per call; '' for none), ARGV[6] how long its reply is kept, ms
-- ARGV[7]  the claim id prefix: 'cID-', or 'cID-bB-' for bucket B of a bucketed campaign
-- ARGV[8], ARGV[9], ARGV[10], ...  triples of (user id, quantity, request id or '')
-- The numbers in ARGV are plain decimal integers (the engine formats them), so the
-- records and events below reuse them as they came: string.format costs a sprintf per
-- directive, the largest share of this script's time per claim.
--
-- At most once (README, "Guarantees"): a client library re-sends a script whose reply it
-- lost (a dropped connection, a cluster redirect, a timeout). The batch id comes with the
-- re-sent call: when its reply is already kept, the batch ran, and the kept reply is
-- answered again without deciding anything a second time. Kept only for batches that
-- accepted a claim, and only briefly (the client library re-sends within seconds).
--
-- The floor finds a store that came back OLDER than it was (restarted from an RDB
-- snapshot or a lagging AOF, or a failover to a replica that missed writes): its seq
-- went backwards under the same gen. Selling from it would sell stock again and reuse
-- claim ids the database already holds, so the state is marked rolled_back and every
-- claim is refused until a rebuild from the database replaces it (a rebuild writes a
-- new gen, so floors from before it no longer apply).
--
-- Returns {'M'} when the campaign has no live state (unknown, the store lost it, or it
-- was found rolled back earlier), {'R'} when this call finds it rolled back (once per
-- rollback, so the caller's alarm fires once). Otherwise the state's gen and seq after
-- the batch, then two entries per claim, in order:
--   'A', record      accepted (the user's new record)
--   'D', record      already claimed: the user holds the limit (their record)
--   'L', may_take    the quantity is more than the user may still take
--   'S', ''          sold out
--   'N', ''          not started
--   'E', ''          ended
if ARGV[5] ~= '' then
  local done = redis.call('GET', KEYS[5])
  if done then
    return cjson.decode(done)
  end
end
local st = redis.call('HMGET', KEYS[1], 'kind', 'limit', 'starts', 'ends', 'remaining', 'seq',
  'gen', 'rolled_back', 'window')
if not st[1] then
  return {'M'}
end
if st[8] then
  return {'M'}
end
local gen = st[7] or ''
if ARGV[3] == gen and tonumber(st[6]) < tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'rolled_back', ARGV[4])
  return {'R'}
end
local kind = st[1]
local limit = tonumber(st[2])
local starts = tonumber(st[3])
local ends = tonumber(st[4])
local remaining = tonumber(st[5])
local seq = tonumber(st[6])
local now_s = ARGV[1]
local now = tonumber(now_s)
local cid = ARGV[2]
local prefix = ARGV[7]
local window = tonumber(st[9] or '0')
local pending = 0

local out = {gen, ''}
local claims, sold, cents = 0, 0, 0
local function answer(code, detail)
  out[#out + 1] = code
  out[#out + 1] = detail
end

for i = 8, #ARGV, 3 do
  local user = ARGV[i]
  local qty_s = ARGV[i + 1]
  local qty = tonumber(qty_s)
  local rid = ARGV[i + 2]
  -- The end first: a campaign closed before its start has ended, not "not started".
  if now >= ends then
    answer('E', '')
  elseif now < starts then
    answer('N', '')
  else
    local rec = redis.call('HGET', KEYS[2], user)
    local held = 0
    if rec then
      held = tonumber(string.match(rec, '^(%d+)|'))
    end
    if held >= limit then
      answer('D', rec)
    elseif held + qty > limit then
      answer('L', string.format('%d', limit - held))
    elseif remaining < qty then
      answer('S', '')
    else
      local amount, amount_s, idx_s = 0, '0', '-1'
      local packet = true
      if kind == 'r' then
        local p = redis.call('LPOP', KEYS[3])
        if p then
          idx_s, amount_s = string.match(p, '^(%d+):(%d+)$')
          amount = tonumber(amount_s)
        else
          packet = false
        end
      end
      if not packet then
        answer('S', '')
      else
        seq = seq + 1
        remaining = remaining - qty
        claims = claims + 1
        sold = sold + qty
        cents = cents + amount
        local id = string.format('%s%010d', prefix, seq)
        rec = string.format('%d', held + qty) .. '|' .. id .. '|' .. qty_s .. '|' .. amount_s
          .. '|' .. now_s .. '|' .. idx_s
        redis.call('HSET', KEYS[2], user, rec)
        local event = cid .. '|' .. id .. '|' .. user .. '|' .. qty_s .. '|' .. amount_s .. '|'
          .. idx_s .. '|' .. now_s
        if window > 0 then
          local by = string.format('%d', now + window)
          redis.call('HSET', KEYS[6], id, 'p|' .. by .. '|' .. user .. '|' .. qty_s .. '|0|')
          redis.call('ZADD', KEYS[7], by, id)
          pending = pending + 1
          event = event .. '|' .. rid .. '|' .. by
        elseif rid ~= '' then
          event = event .. '|' .. rid
        end
        redis.call('XADD', KEYS[4], '*', 'e', event)
        answer('A', rec)
      end
    end
  end
end

if claims > 0 then
  redis.call('HSET', KEYS[1], 'remaining', string.format('%d', remaining), 'seq', string.format('%d', seq))
  redis.call('HINCRBY', KEYS[1], 'claims', claims)
  redis.call('HINCRBY', KEYS[1], 'sold', sold)
  redis.call('HINCRBY', KEYS[1], 'cents', cents)
  if pending > 0 then
    redis.call('HINCRBY', KEYS[1], 'pending', pending)
  end
end
out[2] = string.format('%d', seq)
-- Only a batch that changed something is kept: running one that accepted nothing again
-- changes nothing either.
if ARGV[5] ~= '' and claims > 0 then
  redis.call('SET', KEYS[5], cjson.encode(out), 'PX', ARGV[6])
end
return out

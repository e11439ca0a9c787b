-- order.lua: the ONE atomic step that decides an order's fate (engine/src/order.rs).
-- Pay, cancel and expire of an order race; each runs here, against the order's record,
-- so exactly one of them closes it. Closing decides, moves the counters (units back to
-- stock and the user's hold released when it expired or was cancelled), and queues the
-- change for the workers, all in this script: units sold = paid + pending at every moment,
-- and a unit is never both paid and back on sale.
--
-- Every key is of the ONE bucket that holds the claim (tag {c:ID} or {c:ID:bB-K}).
-- KEYS[1]  {c:ID}:state      hash: remaining, sold, pending, paid, expired, cancelled, refunds, rolled_back
-- KEYS[2]  {c:ID}:users      hash: user id -> "held|claim id|quantity|amount|accepted ms|packet idx"
-- KEYS[3]  {c:ID}:orders     hash: claim id -> "status|pay by ms|user id|quantity|closed ms|payment id"
--          status: p pending, P paid, X expired, C cancelled; closed ms 0 while pending
-- KEYS[4]  {c:ID}:deadlines  sorted set: pending orders' claim ids by pay-by ms
-- KEYS[5]  {c:ID}:claims     stream: the changes, one field e =
--          "o|campaign id|claim id|user id|quantity|status|pay by|closed ms|payment id", and
--          the payments to refund, e = "r|campaign id|payment id|claim id|amount|reason|at ms"
-- KEYS[6]  {c:ID}:refunds    hash: payment id -> "claim id|reason|amount|at ms" (once per payment)
-- ARGV[1]  'pay' | 'cancel' | 'expire'; ARGV[2] now, unix ms; ARGV[3] campaign id
-- pay:     ARGV[4] claim id, ARGV[5] payment id, ARGV[6] amount cents, ARGV[7] unit price cents
-- cancel:  ARGV[4] claim id, ARGV[5] the user asking
-- expire:  ARGV[4] at most this many orders
--
-- An order is due at pay_by: a payment or a cancel at or after it finds the order
-- expired (and expires it, if the sweep has not yet), whatever the sweep's delay.
-- Every call is safe to run twice (a re-sent script): a closed order stays as it is, a
-- refund is recorded once per payment id, and the answers repeat.
--
-- Returns {'M'} when the bucket has no live state. pay: {'P', rec} paid by this payment
-- (now or before), {'X'|'C', rec} the order had expired / was cancelled, {'D', rec} paid
-- by another payment (all three recorded for refund), {'I', expected amount}, {'U'} no
-- such order. cancel: {status code, rec} the order as it now is, {'U'} no such order of
-- this user. expire: {n expired, 1 when the bucket had nothing left before, else 0}.
local st = redis.call('HMGET', KEYS[1], 'remaining', 'rolled_back')
if not st[1] or st[2] then
  return {'M'}
end
local op = ARGV[1]
local now = tonumber(ARGV[2])
local cid = ARGV[3]

local function parse(rec)
  local s, by, user, qty, closed, pid = string.match(rec, '^(%a)|(%d+)|([^|]*)|(%d+)|(%d+)|(.*)$')
  return {s = s, by = tonumber(by), user = user, qty = tonumber(qty), closed = tonumber(closed), pid = pid}
end

local function fmt(o)
  return string.format('%s|%d|%s|%d|%d|%s', o.s, o.by, o.user, o.qty, o.closed, o.pid)
end

local function close(id, o, status, pid)
  o.s, o.closed, o.pid = status, now, pid or ''
  redis.call('HSET', KEYS[3], id, fmt(o))
  redis.call('ZREM', KEYS[4], id)
  redis.call('HINCRBY', KEYS[1], 'pending', -1)
  if status == 'P' then
    redis.call('HINCRBY', KEYS[1], 'paid', 1)
  else
    redis.call('HINCRBY', KEYS[1], 'remaining', o.qty)
    redis.call('HINCRBY', KEYS[1], 'sold', -o.qty)
    redis.call('HINCRBY', KEYS[1], status == 'X' and 'expired' or 'cancelled', 1)
    local rec = redis.call('HGET', KEYS[2], o.user)
    if rec then
      local held, rest = string.match(rec, '^(%d+)|(.*)$')
      held = math.max(0, tonumber(held) - o.qty)
      redis.call('HSET', KEYS[2], o.user, string.format('%d|%s', held, rest))
    end
  end
  redis.call('XADD', KEYS[5], '*', 'e', string.format('o|%s|%s|%s|%d|%s|%d|%d|%s',
    cid, id, o.user, o.qty, status, o.by, now, o.pid))
end

local function refund(id, reason)
  local pid, amount = ARGV[5], ARGV[6]
  if redis.call('HSETNX', KEYS[6], pid, string.format('%s|%s|%s|%d', id, reason, amount, now)) == 1 then
    redis.call('HINCRBY', KEYS[1], 'refunds', 1)
    redis.call('XADD', KEYS[5], '*', 'e', string.format('r|%s|%s|%s|%s|%s|%d',
      cid, pid, id, amount, reason, now))
  end
end

if op == 'expire' then
  local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
  local n = 0
  local empty = tonumber(st[1]) == 0
  for _, id in ipairs(due) do
    local rec = redis.call('HGET', KEYS[3], id)
    local o = rec and parse(rec)
    if o and o.s == 'p' then
      close(id, o, 'X')
      n = n + 1
    else
      redis.call('ZREM', KEYS[4], id)
    end
  end
  return {n, (empty and n > 0) and 1 or 0}
end

local id = ARGV[4]
local rec = redis.call('HGET', KEYS[3], id)
if not rec then
  return {'U'}
end
local o = parse(rec)

if op == 'cancel' then
  if o.user ~= ARGV[5] then
    return {'U'}
  end
  if o.s == 'p' then
    close(id, o, now < o.by and 'C' or 'X')
  end
  return {o.s, fmt(o)}
end

-- pay
local expected = o.qty * tonumber(ARGV[7])
if tonumber(ARGV[6]) ~= expected then
  return {'I', string.format('%d', expected)}
end
if o.s == 'p' then
  if now < o.by then
    close(id, o, 'P', ARGV[5])
    return {'P', fmt(o)}
  end
  close(id, o, 'X')
end
if o.s == 'P' then
  if o.pid == ARGV[5] then
    return {'P', fmt(o)}
  end
  refund(id, 'already_paid')
  return {'D', fmt(o)}
end
refund(id, o.s == 'X' and 'order_expired' or 'order_cancelled')
return {o.s, fmt(o)}

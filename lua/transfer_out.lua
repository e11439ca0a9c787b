-- transfer_out.lua: give units (or red packets) of one bucket of a bucketed campaign to
-- another bucket whose users want them, and record the transfer until the receiver
-- confirms it. The units leave `remaining` and wait in the transfer record, so they are
-- never in two buckets at once: a crash after this script strands them in the record
-- (still counted as the campaign's remaining) until the sweeper delivers them.
--
-- KEYS[1]  {c:ID:bB-K}:state      the donor bucket's state (see claim.lua)
-- KEYS[2]  {c:ID:bB-K}:packets    its unclaimed red packets
-- KEYS[3]  {c:ID:bB-K}:transfers  hash: transfer id -> 'to|units|at ms|gen|packets'
-- ARGV[1]  the transfer id (random)
-- ARGV[2]  the receiving bucket
-- ARGV[3]  the most units to give
-- ARGV[4]  now, unix ms
--
-- At most once (README, "Guarantees"): a call re-sent after a lost reply finds its
-- transfer recorded and answers it again.
--
-- Returns {units, gen, packets} ('' packets for a flash sale; 0 units when the donor
-- has nothing to give, no state, or a rolled-back state).
local done = redis.call('HGET', KEYS[3], ARGV[1])
if done then
  local to, units, at, gen, packets = string.match(done, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return {units, gen, packets}
end
local st = redis.call('HMGET', KEYS[1], 'kind', 'remaining', 'gen', 'rolled_back')
if not st[1] or st[4] then
  return {'0', '', ''}
end
local remaining = tonumber(st[2])
local units = math.min(remaining, tonumber(ARGV[3]))
if units <= 0 then
  return {'0', st[3] or '', ''}
end
local packets = ''
if st[1] == 'r' then
  local taken = redis.call('LPOP', KEYS[2], units)
  if not taken then
    return {'0', st[3] or '', ''}
  end
  units = #taken
  packets = table.concat(taken, ',')
end
redis.call('HSET', KEYS[1], 'remaining', string.format('%d', remaining - units))
redis.call('HSET', KEYS[3], ARGV[1],
  string.format('%s|%d|%s|%s|%s', ARGV[2], units, ARGV[4], st[3] or '', packets))
return {string.format('%d', units), st[3] or '', packets}

-- transfer_in.lua: receive units (or red packets) a donor bucket gave this bucket
-- (transfer_out.lua), at most once per transfer id: a re-sent call, or the sweeper
-- delivering a transfer the giver's process died before delivering, adds nothing twice.
--
-- KEYS[1]  {c:ID:bB-K}:state              the receiving bucket's state (see claim.lua)
-- KEYS[2]  {c:ID:bB-K}:packets            its unclaimed red packets
-- KEYS[3]  {c:ID:bB-K}:received:TRANSFER  string: set once the transfer is received
-- ARGV[1]  units
-- ARGV[2]  the gen of the load the units were given under
-- ARGV[3]  the red packets, 'idx:amount' separated by ',' ('' for a flash sale)
-- ARGV[4]  how long the received mark is kept, seconds
--
-- Returns 1 when received now, 0 when it was received before, -1 when this bucket's
-- state is gone or from another load (a rebuild since: the units of the old load are
-- void, the rebuild counted stock afresh from the database).
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local st = redis.call('HMGET', KEYS[1], 'gen', 'rolled_back')
if not st[1] or st[1] ~= ARGV[2] or st[2] then
  return -1
end
if ARGV[3] ~= '' then
  local items = {}
  for p in string.gmatch(ARGV[3], '[^,]+') do
    items[#items + 1] = p
  end
  redis.call('RPUSH', KEYS[2], unpack(items))
end
redis.call('HINCRBY', KEYS[1], 'remaining', ARGV[1])
redis.call('SET', KEYS[3], '1', 'EX', ARGV[4])
return 1

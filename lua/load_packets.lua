-- load_packets.lua: append one chunk of a campaign's red packets during a load (creation
-- or rebuild), at most once: a chunk re-sent by the client library after a lost reply
-- (README, "Guarantees") must not add its packets twice, or the campaign would hand
-- out more packets (and cents) than it has.
--
-- KEYS[1]  {c:ID}:packets  list: unclaimed red packets "idx:amount"
-- KEYS[2]  {c:ID}:loading  hash: load id -> the last chunk number appended by that load
-- ARGV[1]  the load id (random per load)
-- ARGV[2]  this chunk's number (1, 2, ...: chunks are sent in order, one at a time)
-- ARGV[3..] the chunk's packets
--
-- Returns 1 when the chunk was appended, 0 when it already was.
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if last >= tonumber(ARGV[2]) then
  return 0
end
local items = {}
for i = 3, #ARGV do
  items[#items + 1] = ARGV[i]
end
-- unpack() takes a bounded number of values: the caller's chunks stay well under it.
redis.call('RPUSH', KEYS[1], unpack(items))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], 3600)
return 1

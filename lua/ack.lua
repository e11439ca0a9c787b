-- ack.lua: acknowledge persisted claim events and delete them from their stream, in
-- one step, so the stream's length is always the campaign's unpersisted backlog.
--
-- KEYS[1]  {c:ID}:claims   the stream
-- ARGV[1]  the consumer group
-- ARGV[2..] entry ids
--
-- Returns the number of entries acknowledged.
local ids = {}
for i = 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
return acked

-- close.lua: end a campaign early by moving its end time earlier.
-- Only touches a state that exists, so closing never resurrects a campaign whose
-- live state the store lost (that one needs a rebuild), and never moves an end later.
--
-- KEYS[1]  {c:ID}:state
-- ARGV[1]  the new end, unix milliseconds
--
-- Returns 1 when the end moved, 0 otherwise.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'ends')) <= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'ends', ARGV[1])
return 1

-- signin.lua: the sign-in fast path for one user and day. Records today's sign-in in
-- the user's month bitmap and today's record, and tells the first request from a
-- repeat, in one step. The award itself is the database's (one transaction, unique
-- per user and day); this script only spares the database the repeats.
--
-- KEYS[1]  {u:USER}:signin:days      hash: day (YYYY-MM-DD) -> 'pending' | 'points|streak|balance'
-- KEYS[2]  {u:USER}:signin:YYYY-MM   bitmap: bit N set = signed in on day N of the month;
--          bit 0 set = complete (filled from the database). A bitmap this script creates
--          may lack earlier days (the store lost them), so readers refill it first.
-- ARGV[1]  the day, YYYY-MM-DD
-- ARGV[2]  the day of the month (1-31)
-- ARGV[3]  TTL of the records hash, seconds
-- ARGV[4]  TTL of the bitmap, seconds
--
-- Returns
--   {'D', record}   done: today's award is recorded; a repeat
--   {'P'}           pending: a first request is awarding right now (or died doing so)
--   {'F'}           first: marked now
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if rec then
  if rec == 'pending' then
    return {'P'}
  end
  return {'D', rec}
end
redis.call('SETBIT', KEYS[2], ARGV[2], 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], 'pending')
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'F'}

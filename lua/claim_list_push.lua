-- claim_list_push.lua: add claims the worker just persisted to the user's cached first
-- page, if there is one (a page that is not cached stays uncached: the next read fills
-- it from the database), keeping only the newest.
--
-- KEYS[1]  {u:ID}:claims   (see claim_list_fill.lua)
-- ARGV[1]  claims the page keeps
-- ARGV[2..] score, member pairs
if redis.call('ZSCORE', KEYS[1], '~') == false then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
-- Ranks count from the lowest score: keep the marker and the newest ARGV[1] claims.
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[1]) + 2))
return 1

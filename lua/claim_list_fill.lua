-- claim_list_fill.lua: replace a user's cached first page of claims (GET /v1/me/claims)
-- with the page just read from the database, and mark it complete.
--
-- KEYS[1]  {u:ID}:claims   sorted set: score = accepted ms, member = 'claim id|event';
--                          the member '~' with score +inf marks the set complete
-- ARGV[1]  seconds the page is kept
-- ARGV[2..] score, member pairs
redis.call('DEL', KEYS[1])
redis.call('ZADD', KEYS[1], 'inf', '~')
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1

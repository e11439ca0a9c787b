-- replay.lua: move dead letters back into their campaign's claim stream, oldest
-- first, so the workers try them again (their claim ids make a rewrite a no-op, and an
-- event that fails again returns to the dead letters after its attempts).
--
-- KEYS[1]  {c:ID}:dead     the dead-letter stream
-- KEYS[2]  {c:ID}:claims   the claim stream
-- KEYS[3]  {c:ID}:replay:ID string: this replay's answer, kept ARGV[3] ms
-- ARGV[1]  the most entries to move
-- ARGV[2]  the replay id (random per call)
-- ARGV[3]  how long the answer is kept, ms
--
-- At most once (README, "Guarantees"): a call re-sent after a lost reply answers the
-- first run's count and moves nothing more.
--
-- Returns the number moved. Entries without an event (unreadable ones) stay.
local done = redis.call('GET', KEYS[3])
if done then
  return tonumber(done)
end
local limit = tonumber(ARGV[1])
local moved = 0
local start = '-'
while moved < limit do
  local page = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 500)
  if #page == 0 then
    break
  end
  for _, entry in ipairs(page) do
    local id, fields = entry[1], entry[2]
    local event = nil
    for i = 1, #fields, 2 do
      if fields[i] == 'e' then
        event = fields[i + 1]
      end
    end
    if event ~= nil and event ~= '' and moved < limit then
      redis.call('XADD', KEYS[2], '*', 'e', event)
      redis.call('XDEL', KEYS[1], id)
      moved = moved + 1
    end
    start = '(' .. id
  end
end
redis.call('SET', KEYS[3], moved, 'PX', ARGV[3])
return moved

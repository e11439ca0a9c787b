-- dead_letter.lua: set a claim event aside that the database keeps refusing (or that
-- cannot be read at all), in one step: copy it to the campaign's dead-letter stream
-- with why and when, then acknowledge and delete it from the claim stream. The
-- accepted claim is kept, never dropped: an admin replays it once the cause is fixed.
--
-- KEYS[1]  {c:ID}:claims   the claim stream
-- KEYS[2]  {c:ID}:dead     the dead-letter stream
-- ARGV[1]  the consumer group
-- ARGV[2]  the entry id in the claim stream
-- ARGV[3]  the event (field `e`), or '' when the entry had none
-- ARGV[4]  the reason (for operators)
-- ARGV[5]  now, unix ms
--
-- At most once (README, "Guarantees"): the entry is acknowledged first, and copied only
-- when this call acknowledged it; a call re-sent after a lost reply finds it acknowledged
-- already and sets nothing aside a second time.
--
-- Returns the dead-letter entry's id, or '' when the entry was no longer pending.
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return ''
end
local id = redis.call('XADD', KEYS[2], '*',
  'e', ARGV[3], 'reason', ARGV[4], 'entry', ARGV[2], 'at', ARGV[5])
redis.call('XDEL', KEYS[1], ARGV[2])
return id

-- Compare-and-set of one hash field, with an announcement.
-- KEYS[1] = hash (e.g. rr:node_state or rr:job_state, on the primary)
-- ARGV[1] = field, ARGV[2] = expected value ("" = field absent), ARGV[3] = new value
-- ARGV[4] = channel to publish on ("" = none), ARGV[5] = message
-- Returns 1 when applied, 0 when the current value differs (another process already moved it).
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur == false then cur = '' end
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1

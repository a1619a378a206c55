-- Create an actor entry and claim its name atomically.
-- KEYS[1] = rr:actor:<id>, KEYS[2] = rr:actor_names, KEYS[3] = rr:actors, KEYS[4] = rr:actors:live
-- The holder's entry is read as 'rr:actor:' .. holder, the format of keys.actor_key(); its ID is
-- only known inside the script. Single-instance Redis (no cluster mode), so this is allowed.
-- ARGV[1] = actor id hex, ARGV[2] = "namespace/name" or "", ARGV[3] = channel,
-- ARGV[4..] = field, value pairs of the new entry (must include state=PENDING_CREATION)
-- Returns 1 on success, 0 if the entry already exists (idempotent retry),
-- or an error string "NAME_TAKEN <holder id>" when a live actor holds the name.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[2] ~= '' then
  local holder = redis.call('HGET', KEYS[2], ARGV[2])
  if holder and holder ~= ARGV[1] then
    local st = redis.call('HGET', 'rr:actor:' .. holder, 'state')
    if st and st ~= 'DEAD' then return 'NAME_TAKEN ' .. holder end
  end
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1

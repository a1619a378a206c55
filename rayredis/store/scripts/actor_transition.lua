-- Compare-and-set an actor's state; releases its name when it becomes DEAD.
-- KEYS[1] = rr:actor:<id>, KEYS[2] = rr:actor_names, KEYS[3] = rr:actors:live (left when it becomes DEAD),
-- KEYS[4] = rr:actors:dead (joined when it becomes DEAD, scored by the server's time in ms)
-- ARGV[1] = allowed current states, comma separated
-- ARGV[2] = required current attempt ("" = any)
-- ARGV[3] = channel, ARGV[4] = actor id hex
-- ARGV[5..] = field, value pairs to set (state among them)
-- Returns 1 when applied, 0 when the entry is in another state or attempt.
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
local ok = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == st then ok = true end end
if not ok then return 0 end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then return 0 end
local fields = {}
local newstate = nil
for i = 5, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]; fields[#fields + 1] = ARGV[i + 1]
  if ARGV[i] == 'state' then newstate = ARGV[i + 1] end
end
redis.call('HSET', KEYS[1], unpack(fields))
if newstate == 'DEAD' then
  redis.call('SREM', KEYS[3], ARGV[4])
  local now = redis.call('TIME')
  redis.call('ZADD', KEYS[4], tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), ARGV[4])
  local name = redis.call('HGET', KEYS[1], 'name_key')
  if name and name ~= '' and redis.call('HGET', KEYS[2], name) == ARGV[4] then
    redis.call('HDEL', KEYS[2], name)
  end
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1

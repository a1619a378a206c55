-- The lease of the active GCS: acquire, renew or release, each checked against the holder id.
-- KEYS[1] = rr:gcs_lease, KEYS[2] = rr:cluster
-- ARGV[1] = "acquire", "renew" or "release", ARGV[2] = holder id, ARGV[3] = lease in ms,
-- ARGV[4] = the GCS's address (acquire only)
-- acquire: SET NX PX; on success also writes gcs_address, so only a holder ever publishes it.
-- renew: PEXPIRE if the key still holds this id. release: DEL if it still holds this id.
-- Returns 1 done, 0 another holder (or none, for renew/release), -1 not a cluster primary (no shard map).
if redis.call('HEXISTS', KEYS[2], 'shards') == 0 then return -1 end
local op = ARGV[1]
if op == 'acquire' then
  if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3]) then return 0 end
  redis.call('HSET', KEYS[2], 'gcs_address', ARGV[4])
  return 1
end
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if op == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
elseif op == 'release' then
  redis.call('DEL', KEYS[1])
else
  return redis.error_reply('gcs_lease: unknown op ' .. tostring(op))
end
return 1

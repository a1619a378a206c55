-- Claim the next attempt of a task whose owner died, to re-run it from its spec (raylet/orphans.py):
-- of the nodes that read the entry at one attempt, exactly one gets the next.
-- KEYS[1] = rr:task:<id> (data shard of the task id)
-- ARGV[1] = the attempt the claimer read (the claim applies only while the entry still has it)
-- ARGV[2] = the claimer's node-id hex
-- Returns {1, ARGV[1]+1} when the caller holds the claim (also for a resent claim it already holds),
-- {0, attempt, node} when the entry has moved on (another node's claim, a retry), {-1} when there
-- is no entry (it expired). A claim makes the entry PENDING at the claimer, without expiry.
local att = redis.call('HGET', KEYS[1], 'attempt')
if not att then return {-1} end
local want = tonumber(ARGV[1]) + 1
local node = redis.call('HGET', KEYS[1], 'node') or ''
if tonumber(att) == want and redis.call('HGET', KEYS[1], 'rebuilt_by') == ARGV[2] then return {1, want} end
if tonumber(att) ~= tonumber(ARGV[1]) then return {0, tonumber(att), node} end
redis.call('HSET', KEYS[1], 'attempt', want, 'state', 'PENDING', 'node', ARGV[2], 'rebuilt_by', ARGV[2])
redis.call('PERSIST', KEYS[1])
return {1, want}

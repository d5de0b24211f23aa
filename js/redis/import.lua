-- One batch of RedisTokenStore.import. ARGV: P, first ('1': the namespace
-- must be empty), record count, then per record fp, digest, json, role,
-- uses, revoked, task (opt), expire_at, key ttl, not_after (''  or the
-- minting Worker's expiry), made (what a Worker made with it, counted
-- against maxMadePerWorkerToken); then per task id, parent
-- (opt), depth, root, children, tree size.
if ARGV[2] == '1' and (redis.call('SCARD', RIDX) > 0 or redis.call('SCARD', TIDX) > 0) then
  return fail('ERR_INVALID_ARGUMENT', 'the namespace already holds keys: import needs an empty one')
end
local n = tonumber(ARGV[3])
local at = 4
for _ = 1, n do
  insert(ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 6], ARGV[at + 7], ARGV[at + 8], ARGV[at + 9])
  if ARGV[at + 5] == '1' then redis.call('HSET', rkey(ARGV[at]), 'x', '1') end
  if ARGV[at + 10] ~= '0' then redis.call('HSET', rkey(ARGV[at]), 'm', ARGV[at + 10]) end
  at = at + 11
end
while ARGV[at] do
  local id, parent = ARGV[at], unopt(ARGV[at + 1])
  redis.call('HSET', tkey(id), 'd', ARGV[at + 2], 'r', ARGV[at + 3], 'c', ARGV[at + 4], 'n', ARGV[at + 5])
  if parent then
    redis.call('HSET', tkey(id), 'p', parent)
    redis.call('SADD', P .. 'k:' .. parent, id)
  end
  redis.call('SADD', TIDX, id)
  at = at + 6
end
return {'OK'}

-- startTask. ARGV: P, fp, digest, role, parent (opt), idmode ('explicit' or
-- 'made'), id, deferred ('1': the id is refused, reported after the depth
-- check), maxSpawnDepth, maxTasks, maxTasksPerTree, maxChildrenPerTask,
-- maxMadePerWorkerToken
local fp, worker, parent = ARGV[2], ARGV[4] == 'worker', unopt(ARGV[5])
local key = rkey(fp)
local r, e = decide(key, ARGV[3], worker, '2', parent)
if not r then return e end
if parent == nil and worker then
  parent = r[4] or nil
  if parent == nil then return fail('ERR_TASK_NOT_FOUND') end
end
local depth, root, children = 0, nil, 0
if parent then
  local node = redis.call('HMGET', tkey(parent), 'd', 'r', 'c')
  if not node[1] then return fail('ERR_TASK_NOT_FOUND', opt(parent)) end
  depth = tonumber(node[1]) + 1
  if depth >= tonumber(ARGV[9]) then return fail('ERR_SPAWN_DEPTH_EXCEEDED', depth, ARGV[9]) end
  root = node[2]
  children = tonumber(node[3] or '0')
end
if ARGV[8] == '1' then return {'DEFER'} end
local id = ARGV[7]
if redis.call('EXISTS', tkey(id)) == 1 then
  if ARGV[6] == 'explicit' then return fail('ERR_INVALID_ARGUMENT', 'a task with this id already exists') end
  return {'RETRY'}
end
local refused
if worker then
  refused = limit(tonumber(redis.call('HGET', key, 'm') or '0'), ARGV[13], 'maxMadePerWorkerToken', false)
  if refused then return refused end
end
if parent then
  refused = limit(children, ARGV[12], 'maxChildrenPerTask', false)
  if refused then return refused end
  local tree = 0
  if root then tree = tonumber(redis.call('HGET', tkey(root), 'n') or '0') end
  refused = limit(tree, ARGV[11], 'maxTasksPerTree', false)
  if refused then return refused end
end
refused = limit(redis.call('SCARD', TIDX), ARGV[10], 'maxTasks', worker)
if refused then return refused end
refused = spend(fp, r, 1)
if refused then return refused end
if worker then redis.call('HINCRBY', key, 'm', 1) end
redis.call('HSET', tkey(id), 'd', depth, 'r', root or id, 'c', 0, 'n', 1)
if parent then
  redis.call('HSET', tkey(id), 'p', parent)
  redis.call('HINCRBY', tkey(parent), 'c', 1)
  if root then redis.call('HINCRBY', tkey(root), 'n', 1) end
  redis.call('SADD', P .. 'k:' .. parent, id)
end
redis.call('SADD', TIDX, id)
return {'OK', id, opt(parent), tostring(depth)}

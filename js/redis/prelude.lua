-- Shared by every captoken script: js/redis.cjs loads them as one library
-- of Redis Functions (this prelude runs once, at load), or as scripts with
-- this prelude in front of each. KEYS[1] is the namespace's record index;
-- every key of a namespace starts with the prefix ARGV[1] =
-- 'ct:{<namespace>}:' and so shares its hash slot.
-- Keys: r:<fp> record hash (d digest, j token JSON without nonce, u uses
-- left or -1, x revoked 0/1, t bound task, o role, e expire_at, m made,
-- a not_after: the expiry of the Worker that minted the token, which no
-- remint outlives; absent for tokens no Worker minted);
-- R set of fingerprints; t:<id> task hash (p parent, d depth, r root,
-- c children, n tree size); T set of task ids; k:<id> child ids;
-- b:<id> fingerprints bound to the task.
-- Set by enter() at the start of every call (the library's functions share
-- them; Redis runs one call at a time).
local P, RIDX, TIDX
local function enter(keys, argv)
  P = argv[1]
  RIDX = keys[1]
  TIDX = P .. 'T'
end
local function rkey(fp) return P .. 'r:' .. fp end
local function tkey(id) return P .. 't:' .. id end
-- Optional strings travel as '' (none) or '=' .. value.
local function opt(s) if s then return '=' .. s end return '' end
local function unopt(s) if s == nil or s == '' then return nil end return string.sub(s, 2) end
local function fail(code, a, b) return {'E', code, tostring(a or ''), tostring(b or '')} end

local function limit(count, max, name, worker)
  max = tonumber(max)
  local cap = max
  if worker then cap = max - math.ceil(max / 10) end
  if count >= cap then return fail('ERR_LIMIT_EXCEEDED', name, max) end
  return nil
end

-- Whether task is strictly below anc (depth falls by one per step up).
local function is_below(task, anc)
  local floor = redis.call('HGET', tkey(anc), 'd')
  if not floor then return false end
  floor = tonumber(floor)
  local node = redis.call('HMGET', tkey(task), 'd', 'p')
  while node[1] do
    if tonumber(node[1]) <= floor then return false end
    local parent = node[2]
    if not parent then return false end
    if parent == anc then return true end
    node = redis.call('HMGET', tkey(parent), 'd', 'p')
  end
  return false
end

-- Steps 5 to 7 without spending, for the record at key. worker: the token
-- is a Worker's. kind: '1' the verb must name the bound task, '2' the bound
-- task or one below it, '0' no rule. named: the named task or nil. Returns
-- the record {d, u, x, t} or nil and the refusal.
local function decide(key, digest, worker, kind, named)
  local r = redis.call('HMGET', key, 'd', 'u', 'x', 't')
  if not r[1] then return nil, fail('ERR_TOKEN_NOT_FOUND') end
  if r[1] ~= digest then return nil, fail('ERR_BAD_SIGNATURE') end
  if worker and kind ~= '0' then
    local bound = r[4] or nil
    local ok
    if kind == '1' then
      ok = bound ~= nil and named ~= nil and bound == named
    elseif named == nil then
      ok = true
    elseif bound == nil then
      ok = false
    else
      ok = named == bound or is_below(named, bound)
    end
    if not ok then return nil, fail('ERR_TOKEN_TASK_MISMATCH', opt(bound), opt(named)) end
  end
  if r[3] == '1' then return nil, fail('ERR_TOKEN_REVOKED') end
  if r[2] == '0' then return nil, fail('ERR_TOKEN_USES_EXHAUSTED') end
  return r
end

-- Spend n uses of a record decide() allowed.
local function spend(fp, r, n)
  if r[2] ~= '-1' then
    if tonumber(r[2]) < n then return fail('ERR_TOKEN_USES_EXHAUSTED') end
    redis.call('HINCRBY', rkey(fp), 'u', -n)
  end
  return nil
end

-- Record a new token; an existing record is left as it is. notafter: '' or
-- the minting Worker's expiry.
local function insert(fp, digest, json, role, uses, task, expire, keyttl, notafter)
  local k = rkey(fp)
  if redis.call('EXISTS', k) == 1 then return end
  redis.call('HSET', k, 'd', digest, 'j', json, 'u', uses, 'x', '0', 'o', role, 'e', expire, 'm', '0')
  if notafter and notafter ~= '' then redis.call('HSET', k, 'a', notafter) end
  local bound = unopt(task)
  if bound then
    redis.call('HSET', k, 't', bound)
    redis.call('SADD', P .. 'b:' .. bound, fp)
  end
  redis.call('SADD', RIDX, fp)
  if tonumber(keyttl) > 0 then redis.call('EXPIRE', k, keyttl) end
end

-- dispatchAttempt. ARGV: P, fp, digest, role, task (opt), stage (0, or
-- where the process's own refusal stands: 1, 2 or 3), asked (-1: none),
-- maxRecords, maxMadePerWorkerToken, then the new record: fp, digest, json,
-- uses, expire_at, key ttl, not_after ('' or the minting Worker's expiry)
local fp, worker, task = ARGV[2], ARGV[4] == 'worker', unopt(ARGV[5])
local key = rkey(fp)
local r, e = decide(key, ARGV[3], worker, '2', task)
if not r then return e end
local stage = ARGV[6]
if stage == '1' then return {'DEFER'} end
if redis.call('EXISTS', tkey(task)) == 0 then return fail('ERR_TASK_NOT_FOUND', opt(task)) end
local handed = 0
local refused
if worker then
  refused = limit(tonumber(redis.call('HGET', key, 'm') or '0'), ARGV[9], 'maxMadePerWorkerToken', false)
  if refused then return refused end
  if stage == '2' then return {'DEFER'} end
  if r[2] ~= '-1' then
    local spare = tonumber(r[2]) - 1
    if spare <= 0 then return fail('ERR_TOKEN_USES_EXHAUSTED') end
    local asked = tonumber(ARGV[7])
    if asked < 0 then
      return fail('ERR_INVALID_ARGUMENT', 'a Worker with limited uses must name maxUses (at least 1) for the token it mints')
    end
    if asked == 0 then return fail('ERR_INVALID_ARGUMENT', 'maxUses must be at least 1') end
    if asked > spare then
      return fail('ERR_INVALID_ARGUMENT', 'maxUses ' .. ARGV[7] .. ' is more than the ' .. spare .. ' uses the minting token has left to give')
    end
    handed = asked
  end
end
refused = limit(redis.call('SCARD', RIDX), ARGV[8], 'maxRecords', worker)
if refused then return refused end
if stage == '3' then return {'DEFER'} end
refused = spend(fp, r, handed + 1)
if refused then return refused end
if worker then redis.call('HINCRBY', key, 'm', 1) end
insert(ARGV[10], ARGV[11], ARGV[12], 'worker', ARGV[13], ARGV[5], ARGV[14], ARGV[15], ARGV[16])
return {'OK'}

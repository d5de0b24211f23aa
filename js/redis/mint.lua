-- attachOperator, mint and adopt. ARGV: P, deferred ('1': the process
-- refused the token, reported after the records limit), maxRecords, then
-- the record: fp, digest, json, role, uses, task (opt), expire_at, key ttl.
-- An adopted token already recorded changes nothing (another token under
-- the same fingerprint is a bad signature).
local d = redis.call('HGET', rkey(ARGV[4]), 'd')
if d then
  if d ~= ARGV[5] then return fail('ERR_BAD_SIGNATURE') end
  return {'OK', '0'}
end
local refused = limit(redis.call('SCARD', RIDX), ARGV[3], 'maxRecords', false)
if refused then return refused end
if ARGV[2] == '1' then return {'DEFER'} end
insert(ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
return {'OK', '1'}

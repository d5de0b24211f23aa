-- verify (spend) and check, for every call a process had pending at once:
-- one script runs them in order, each as if alone. ARGV[2] packs the calls
-- end to end, one argument and one reply for them all instead of one each.
-- Each call: spend ('1' or '0'), role ('w' Worker, '-' any other), kind
-- ('0', '1', '2': see decide), '=' when a task is named ('-' none), the
-- fingerprint (64), the digest (64), the named task's byte length as six
-- digits, then the named task. A task id may hold any byte, so it is
-- counted, never delimited; the key is made here from the fingerprint, so
-- no call can name a key outside the namespace.
-- Reply: {entries, extra...}. entries holds only ASCII, one entry per call,
-- each ended by ',': for an allowed call the uses left (-1: unlimited) and
-- how the bound task is told: ':' none, '=' the named task, '*' the next
-- extra; for a refusal '!' .. code, and its two details are the next two
-- extras.
-- Written for speed: each HMGET field costs Redis about as much as four
-- string.sub (measured), so decide asks for four fields, and the loop makes
-- few strings (the reply's parts are joined once, at the end).
local calls = ARGV[2]
local parts = {}
local out = {''}
local at = 1
local last = #calls
while at <= last do
  local key = rkey(string.sub(calls, at + 4, at + 67))
  local digest_at = at + 68
  local len = tonumber(string.sub(calls, digest_at + 64, digest_at + 69))
  if not len then return redis.error_reply('ERR malformed call') end
  local named
  if string.byte(calls, at + 3) == 61 then -- '='
    named = string.sub(calls, digest_at + 70, digest_at + 69 + len)
  end
  local r, e = decide(key, string.sub(calls, digest_at, digest_at + 63), string.byte(calls, at + 1) == 119, -- 'w'
    string.sub(calls, at + 2, at + 2), named)
  local n = #parts
  if r then
    local left = r[2]
    if string.byte(calls, at) == 49 and left ~= '-1' then -- '1': spend
      left = redis.call('HINCRBY', key, 'u', -1)
    end
    local bound = r[4]
    parts[n + 1] = left
    if not bound then
      parts[n + 2] = ':,'
    elseif bound == named then
      parts[n + 2] = '=,'
    else
      parts[n + 2] = '*,'
      out[#out + 1] = bound
    end
  else
    parts[n + 1] = '!'
    parts[n + 2] = e[2]
    parts[n + 3] = ','
    out[#out + 1] = e[3]
    out[#out + 1] = e[4]
  end
  at = digest_at + 70 + len
end
out[1] = table.concat(parts)
return out

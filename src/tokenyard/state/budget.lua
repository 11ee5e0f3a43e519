-- Token budget of one period. KEYS[1]: integer counter. ARGV: tokens, limit, force (1/0), ttl_ms.
local tokens = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[3] == '1' or used + tokens <= limit then
  used = redis.call('INCRBY', KEYS[1], tokens)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {1, used}
end
return {0, used}

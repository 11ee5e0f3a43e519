-- Bounded list. KEYS[1]: list. ARGV: value, max_len, ttl_ms ('' = keep the current TTL).
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
if ARGV[3] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return redis.call('LLEN', KEYS[1])

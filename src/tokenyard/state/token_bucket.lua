-- Token bucket take. KEYS[1]: hash {tokens, ts, adj}. ARGV: cost, rate_per_s, burst, now ('' = server clock).
-- Refill to now (capped at burst), apply pending reconciliation (adj), then take cost if the level allows.
-- Floats are returned as strings: Redis truncates Lua numbers to integers.
local cost = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[4])
end
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'adj')
local tokens = tonumber(h[1])
local ts = tonumber(h[2])
local adj = tonumber(h[3]) or 0
if tokens == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
tokens = math.min(burst, tokens + adj)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif rate > 0 and cost <= burst then
  retry = (cost - tokens) / rate
else
  retry = -1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts), 'adj', '0')
local ttl = 86400000
if rate > 0 then
  ttl = math.ceil(((burst - tokens) / rate + 1) * 1000)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return {allowed, string.format('%.17g', tokens), string.format('%.17g', retry)}

-- All-or-nothing take across several token buckets (e.g. key, tenant and class scopes; requests and tokens).
-- KEYS: bucket hashes {tokens, ts, adj}, distinct. ARGV[1]: now ('' = server clock); then per key: cost, rate, burst.
-- Each bucket is refilled to now (capped at burst) and its pending reconciliation (adj) applied; the costs are
-- taken only if every bucket has enough. A single-bucket take is this script with one key.
-- Returns {all_allowed, {{bucket_allowed, level, retry_after}, ...}} with floats as strings.
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
local levels, stamps = {}, {}
local all = 1
for i = 1, #KEYS do
  local cost, rate, burst = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local h = redis.call('HMGET', KEYS[i], 'tokens', 'ts', 'adj')
  local tokens, ts, adj = tonumber(h[1]), tonumber(h[2]), tonumber(h[3]) or 0
  if tokens == nil then
    tokens = burst
    ts = now
  end
  if now > ts then
    tokens = math.min(burst, tokens + (now - ts) * rate)
    ts = now
  end
  levels[i] = math.min(burst, tokens + adj)
  stamps[i] = ts
  if levels[i] < cost then
    all = 0
  end
end
local out = {}
for i = 1, #KEYS do
  local cost, rate, burst = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local tokens = levels[i]
  local ok, retry = 0, 0
  if tokens >= cost then
    ok = 1
  elseif rate > 0 and cost <= burst then
    retry = (cost - tokens) / rate
  else
    retry = -1
  end
  if all == 1 then
    tokens = tokens - cost
  end
  redis.call('HSET', KEYS[i], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', stamps[i]),
    'adj', '0')
  local ttl = 86400000
  if rate > 0 then
    ttl = math.ceil(((burst - tokens) / rate + 1) * 1000)
  end
  redis.call('PEXPIRE', KEYS[i], ttl)
  out[i] = {ok, string.format('%.17g', tokens), string.format('%.17g', retry)}
end
return {all, out}

-- Fixed-window counter. KEYS[1]: hash {w: window index, n: hits}. ARGV: cost, limit, window_s, now ('' = server).
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[4])
end
local index = math.floor(now / window)
local h = redis.call('HMGET', KEYS[1], 'w', 'n')
local hits = 0
if tonumber(h[1]) == index then
  hits = tonumber(h[2])
end
local allowed = 0
if hits + cost <= limit then
  hits = hits + cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'w', string.format('%d', index), 'n', string.format('%d', hits))
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
return {allowed, hits, string.format('%.17g', (index + 1) * window - now)}

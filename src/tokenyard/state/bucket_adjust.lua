-- Reconcile a token bucket. KEYS[1]: bucket hash. ARGV[1]: delta (refund > 0, debit < 0).
-- The delta waits in 'adj' until the next take, which knows the bucket's rate and burst.
redis.call('HINCRBYFLOAT', KEYS[1], 'adj', ARGV[1])
if redis.call('PTTL', KEYS[1]) < 3600000 then
  redis.call('PEXPIRE', KEYS[1], 3600000)
end
return 1

"""Transport chaos: a TCP fault-injecting proxy (:mod:`.proxy`, API in :mod:`.api`), a network-namespace
harness for root (:mod:`.netns`), and before/during/after scenarios with SLO deltas (:mod:`.scenario`)."""

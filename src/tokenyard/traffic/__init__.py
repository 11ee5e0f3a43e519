"""The traffic core both fronts call: rate limits, degradation, admission (flow control), routing."""

"""The stages a prepare run passes rows through, each in its own room: clean, dedup, groups, split, rebalance, normalise."""

"""Deduplication: exact and by key (exact), label conflicts, near duplicates (near), and the probe filter they use."""

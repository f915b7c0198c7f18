"""Operations: what the pipeline is doing (snapshot, /metrics), what it did (per-minute rollups),
and who is told when it goes wrong (alerts)."""

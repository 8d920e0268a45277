"""Real media processes on loopback: the encoder stand-in and the ingest/relay/sink harness."""

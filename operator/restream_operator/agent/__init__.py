"""The agents that run in ingest and relay pods (`restream-agent ingest|relay`)."""

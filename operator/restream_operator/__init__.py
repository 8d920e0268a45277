"""restream-operator: a LiveStream becomes an RTMP ingest plus one relay per destination.

Its version: ``restream_operator.version.version()``, from the package metadata.
"""

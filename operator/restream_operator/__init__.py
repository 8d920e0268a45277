"""restream-operator: a LiveStream becomes an RTMP ingest plus one relay per destination."""

__version__ = "0.1.0"

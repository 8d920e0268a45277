"""`restream-operator console`: a web page on 127.0.0.1 that shows LiveStreams live.

It holds no rights of its own: every request it makes to the Kubernetes API carries the
credentials of the person who started it (their kubeconfig and context), so RBAC stays
the single authority over what they see. The local port is guarded like a notebook
server's (server.py): a token in the first URL, a session cookie after, and Host and
Origin checks against DNS rebinding and cross-site requests. In a cluster (auth.py,
incluster.py) each viewer brings their own bearer token, and the console has none.
"""

"""The local Kubernetes cluster: for people (`make cluster-up`, `make demo`), the tests
and the benchmarks (see controlplane.py, node.py, and __main__.py for the commands)."""

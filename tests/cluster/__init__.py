"""The local Kubernetes control plane the tests run against (see controlplane.py)."""

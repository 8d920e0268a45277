//go:build tools

// Package tools pins the commands ../build.sh compiles for RESTREAM_KUBERNETES=oldest,
// so that go.mod and go.sum record every module they need. etcd, kwok and the other
// tools are not here: they are version-independent and come from the pinned build.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)

// argo-health asks Argo CD's own code what health it gives one object: the argocd-cm
// merge patch that README.md tells people to apply (a YAML file with a `data:` map) as
// the only argument, the JSON object on stdin, {"status": "Healthy|Progressing|...",
// "message": ...} on stdout. The tests ask it what Argo CD would show for a LiveStream
// taken from the API server.
//
// It runs Argo CD v2's code, not an imitation of it: the patch's data becomes the
// argocd-cm ConfigMap (in a client-go fake clientset), Argo CD's settings manager reads
// its resource overrides from there as the application controller does (so the key
// resource.customizations.health.restream.dev_LiveStream is parsed by Argo CD), and
// util/lua runs the health script found for the object's group and kind in gopher-lua,
// with the object, decoded as an unstructured.Unstructured like the controller's cache
// holds it, as the global `obj`.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	argolua "github.com/argoproj/argo-cd/v2/util/lua"
	"github.com/argoproj/argo-cd/v2/util/settings"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

const namespace = "argocd"

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: argo-health ARGOCD-CM-PATCH.yaml < object.json"))
	}
	logrus.SetLevel(logrus.WarnLevel)
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	var patch struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.UnmarshalStrict(raw, &patch); err != nil {
		fail(err)
	}
	data, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	if err != nil {
		fail(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		fail(err)
	}
	// What an Argo CD install has, labelled so that its settings informers see them.
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Labels: map[string]string{"app.kubernetes.io/part-of": "argocd"},
		}
	}
	cm := &corev1.ConfigMap{ObjectMeta: meta("argocd-cm"), Data: patch.Data}
	secret := &corev1.Secret{ObjectMeta: meta("argocd-secret")}
	clientset := fake.NewSimpleClientset(cm, secret)
	mgr := settings.NewSettingsManager(context.Background(), clientset, namespace)
	overrides, err := mgr.GetResourceOverrides()
	if err != nil {
		fail(err)
	}
	health, err := argolua.ResourceHealthOverrides(overrides).GetResourceHealth(obj)
	if err != nil {
		fail(err)
	}
	if health == nil {
		key := argolua.GetConfigMapKey(obj.GroupVersionKind())
		fail(fmt.Errorf("argocd-cm holds no health check for %s", key))
	}
	if err := json.NewEncoder(os.Stdout).Encode(health); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argo-health:", err)
	os.Exit(1)
}

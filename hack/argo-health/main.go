// argo-health runs an Argo CD health check (Lua) on one object with Argo CD's own code,
// and prints the health it returns: the script's path as the only argument, the JSON
// object on stdin, {"status": "Healthy|Progressing|...", "message": ...} on stdout. The
// tests ask it what Argo CD would show for a LiveStream taken from the API server.
//
// It is Argo CD's health assessment of a resource with a customization, not a copy of
// it: github.com/argoproj/argo-cd/v2/util/lua, given the script as the health override
// of the object's group/kind (what argocd-cm's
// resource.customizations.health.<group>_<kind> becomes), without useOpenLibs (as a
// script from argocd-cm runs), finds it by the object's GroupVersionKind and runs it in
// gopher-lua with the object as the global `obj`. The object is decoded as the
// controller's cache holds it: an unstructured.Unstructured.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	appv1 "github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	argolua "github.com/argoproj/argo-cd/v2/util/lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func main() {
	if len(os.Args) != 2 {
		fail(fmt.Errorf("usage: argo-health SCRIPT.lua < object.json"))
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
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
	key := argolua.GetConfigMapKey(obj.GroupVersionKind()) // restream.dev/LiveStream
	overrides := argolua.ResourceHealthOverrides{
		key: appv1.ResourceOverride{HealthLua: string(script), UseOpenLibs: false},
	}
	health, err := overrides.GetResourceHealth(obj)
	if err != nil {
		fail(err)
	}
	if health == nil {
		fail(fmt.Errorf("Argo CD found no health check for %s", key))
	}
	if err := json.NewEncoder(os.Stdout).Encode(health); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argo-health:", err)
	os.Exit(1)
}

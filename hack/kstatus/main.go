// kstatus prints what sigs.k8s.io/cli-utils' kstatus (the library Flux's health checks,
// `kubectl apply --prune`'s successors and kpt read) makes of one object: the JSON
// object on stdin, {"status": "Current|InProgress|Failed|...", "message": ...} on
// stdout. The tests ask it, rather than re-implementing its rules, whether a
// LiveStream's status tells GitOps tools the truth.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	if err != nil {
		fail(err)
	}
	// Unstructured's own decoder: integers stay int64, as kstatus expects of them.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		fail(err)
	}
	res, err := status.Compute(obj)
	if err != nil {
		fail(err)
	}
	out, err := json.Marshal(map[string]string{"status": res.Status.String(), "message": res.Message})
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(2)
}

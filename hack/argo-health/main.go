// argo-health runs an Argo CD health check (Lua) on one object the way Argo CD's
// controller does, and prints the health it returns: the script's path as the only
// argument, the JSON object on stdin, {"status": "Healthy|Progressing|...", "message":
// ...} on stdout. The tests ask it what Argo CD would show for a LiveStream taken from
// the API server.
//
// What makes it Argo CD's way (argoproj/argo-cd util/lua, VM.runLua and
// ExecuteHealthLua, read for this; none of its code is copied):
//   - the interpreter is github.com/yuin/gopher-lua, at Argo CD's version;
//   - only the package, base and table libraries and a "safe" os (os.time, os.date) are
//     opened, as for a script from argocd-cm without useOpenLibs: no string, math or io;
//   - the object is an unstructured.Unstructured decoded from JSON (integers int64,
//     other numbers float64), turned into Lua values by type: maps into hash tables,
//     lists into array tables (in order), numbers into LNumber, null into nil; it is the
//     global `obj`;
//   - the script runs under a one-second deadline, and its return value must be a
//     table; the table goes through layeh.com/gopher-json into {status, message}, and a
//     status that is not one of Argo CD's health codes becomes Unknown.
//
// Importing Argo CD's own package (github.com/argoproj/argo-cd/v2/util/lua) was tried:
// it drags in Argo CD's API types, gitops-engine and a Kubernetes replace block, which
// is more than this check should cost to build; see README ("GitOps health").
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	luajson "layeh.com/gopher-json"
)

// Argo CD's health codes (gitops-engine's health.HealthStatusCode values).
var codes = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

type health struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

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
	out, err := run(string(script), obj.Object)
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func run(script string, obj map[string]interface{}) (*health, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	libs := []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	}
	for _, lib := range libs {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	L.PreloadModule(lua.OsLibName, func(L *lua.LState) int {
		L.Push(L.SetFuncs(L.NewTable(), safeOs))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return nil, err
	}
	ret := L.Get(-1)
	if ret.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	encoded, err := luajson.Encode(ret)
	if err != nil {
		return nil, err
	}
	out := &health{}
	if err := json.Unmarshal(encoded, out); err != nil {
		return nil, err
	}
	if !codes[out.Status] {
		return &health{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return out, nil
}

// The os functions Argo CD lets a health script have: the time, nothing that touches
// the process or the file system.
var safeOs = map[string]lua.LGFunction{
	"time": func(L *lua.LState) int {
		L.Push(lua.LNumber(time.Now().Unix()))
		return 1
	},
	"date": func(L *lua.LState) int {
		L.Push(lua.LString(time.Now().UTC().Format(time.RFC3339)))
		return 1
	},
}

func openSafeOs(L *lua.LState) int {
	L.Push(L.RegisterModule(lua.OsLibName, safeOs))
	return 1
}

// toLua turns a decoded JSON value into a Lua value, by its Go type.
func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case json.Number:
		return lua.LString(x)
	case int:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case []interface{}:
		t := L.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(L, item))
		}
		return t
	case map[string]interface{}:
		t := L.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(L, item))
		}
		return t
	}
	return lua.LNil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "argo-health:", err)
	os.Exit(1)
}

// Command argocd-health judges Kubernetes objects with an Argo CD resource health script, run the
// way Argo CD v3.5 runs a health check configured in argocd-cm
// (resource.customizations.health.<group>_<kind>): same Lua VM (github.com/yuin/gopher-lua at
// the version Argo CD's go.mod pins), same libraries, same conversion of the object into Lua and
// of the returned table back into a health status.
//
// Usage: argocd-health SCRIPT.lua < objects.json
//
// Stdin holds one object or a JSON array of objects. Stdout gets one result per object, in input
// order (an object for a single input, an array otherwise): {"status", "message"} as Argo CD
// would store them, plus "error" when Argo CD's evaluation itself fails (status is then
// "Unknown" and message the error, as gitops-engine's health.GetResourceHealth reports it). The
// exit code is 0 when every object was evaluated (even with an error result), 1 when the script
// or the input cannot be read.
//
// Each step below names the Argo CD function it reproduces (paths in github.com/argoproj/argo-cd
// at v3.5.1). Argo CD's own github.com/argoproj/argo-cd/v3/util/lua is not imported: it needs
// github.com/argoproj/argo-cd/gitops-engine, which Argo CD's go.mod takes from its own source
// tree (a replace directive, ignored in other modules) at a version the Go module proxy does not
// serve; and it would pull in about 200 modules (Argo CD's API types, gRPC, Kubernetes clients)
// for a few hundred lines of Lua glue.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// healthStatus mirrors gitops-engine/pkg/health.HealthStatus: the JSON tags decide how the
// table the script returns is read.
type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

// validStatuses mirrors util/lua/lua.go isValidHealthStatusCode.
var validStatuses = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

const (
	// util/lua/lua.go: the constants incorrectReturnType and invalidHealthStatus.
	incorrectReturnType = "expect %s output from Lua script, not %s"
	invalidHealthStatus = "Lua returned an invalid health status"
	// util/lua/lua.go runLuaWithResourceActionParameters: context.WithTimeout(..., 1*time.Second).
	scriptTimeout = time.Second
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua < objects.json")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
}

func run(scriptPath string, in io.Reader, out io.Writer) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	objects, single, err := decodeObjects(raw)
	if err != nil {
		return err
	}
	results := make([]result, 0, len(objects))
	for _, obj := range objects {
		results = append(results, judge(obj, string(script)))
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if single {
		return enc.Encode(results[0])
	}
	return enc.Encode(results)
}

// decodeObjects reads the objects the way client-go hands them to Argo CD's controller: as
// unstructured maps decoded with k8s.io/apimachinery's JSON rules, where a whole number becomes
// int64 and any other number float64 (never json.Number, which util/lua's decodeValue would turn
// into a string).
func decodeObjects(raw []byte) ([]map[string]any, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false, fmt.Errorf("stdin is not JSON: %w", err)
	}
	doc = convertNumbers(doc)
	switch v := doc.(type) {
	case map[string]any:
		return []map[string]any{v}, true, nil
	case []any:
		objects := make([]map[string]any, 0, len(v))
		for i, item := range v {
			obj, ok := item.(map[string]any)
			if !ok {
				return nil, false, fmt.Errorf("item %d is not a JSON object", i)
			}
			objects = append(objects, obj)
		}
		if len(objects) == 0 {
			return nil, false, errors.New("no objects on stdin")
		}
		return objects, false, nil
	}
	return nil, false, errors.New("stdin must hold an object or an array of objects")
}

func convertNumbers(value any) any {
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			v[key] = convertNumbers(item)
		}
	case []any:
		for i, item := range v {
			v[i] = convertNumbers(item)
		}
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
	}
	return value
}

// judge mirrors gitops-engine/pkg/health/health.go GetResourceHealth for an object with a
// health override: an error from the script becomes Unknown with the error as message. Its
// first step (an object with a deletionTimestamp is Progressing "Pending deletion" before any
// script runs) is not reproduced: this helper judges the script, not that shortcut.
func judge(obj map[string]any, script string) result {
	hs, err := executeHealthLua(obj, script)
	if err != nil {
		return result{Status: "Unknown", Message: err.Error(), Error: err.Error()}
	}
	return result{Status: hs.Status, Message: hs.Message}
}

// executeHealthLua mirrors util/lua/lua.go VM.ExecuteHealthLua: run the script, then read the
// value on top of the stack.
func executeHealthLua(obj map[string]any, script string) (*healthStatus, error) {
	l, err := runLua(obj, script)
	if l != nil {
		defer l.Close()
	}
	if err != nil {
		return nil, err
	}
	returnValue := l.Get(-1)
	switch returnValue.Type() {
	case lua.LTTable:
		// The table goes through JSON (layeh.com/gopher-json Encode, then encoding/json into
		// HealthStatus), so a non-string message is an error and unknown keys are ignored.
		jsonBytes, err := luajson.Encode(returnValue)
		if err != nil {
			return nil, err
		}
		hs := &healthStatus{}
		if err := json.Unmarshal(jsonBytes, hs); err != nil {
			// Meant for an empty table, which encodes as []; but errors.As matches any
			// *json.UnmarshalTypeError there, so e.g. a numeric message also yields an empty
			// status rather than an error.
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) {
				return &healthStatus{}, nil
			}
			return nil, err
		}
		if !validStatuses[hs.Status] {
			return &healthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
		}
		return hs, nil
	case lua.LTNil:
		return &healthStatus{}, nil
	}
	return nil, fmt.Errorf(incorrectReturnType, "table", returnValue.Type().String())
}

// runLua mirrors util/lua/lua.go VM.runLuaWithResourceActionParameters with UseOpenLibs false,
// which is what an argocd-cm health customization gets unless
// resource.customizations.useOpenLibs.<group>_<kind> is "true" (util/settings/settings.go
// appendResourceOverridesFromSplitKeys). The caller closes the returned state.
func runLua(obj map[string]any, script string) (*lua.LState, error) {
	// No standard library is opened by NewState ...
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	// ... only package, base, table and Argo CD's "safe" os (util/lua/oslib_safe.go). string,
	// math, io, debug and coroutine are absent: string.format or ("x"):sub() fail here although
	// a stock Lua runs them.
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			return l, err
		}
	}
	// oslib_safe.go SafeOsLoader, preloaded: require("os") returns a table with time and date.
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOsFuncs))
		return 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	l.SetContext(ctx)

	// Globals: actionParams (empty for a health check) and obj.
	l.SetGlobal("actionParams", l.CreateTable(0, 0))
	l.SetGlobal("obj", decodeValue(l, obj))

	// lua.go loadCompiledFunction compiles with LState.LoadString (cached by source, which does
	// not change the result), then PCall(0, MultRet, nil).
	fn, err := l.LoadString(script)
	if err == nil {
		l.Push(fn)
		err = l.PCall(0, lua.MultRet, nil)
	}
	// Argo CD drops the Lua stack trace from run-time errors before reporting them.
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = ""
		err = apiErr
	}
	return l, err
}

// openSafeOs mirrors util/lua/oslib_safe.go OpenSafeOs, which registers its functions under
// lua.TabLibName ("table"), not "os". gopher-lua's RegisterModule returns an already loaded
// module unchanged, and the table library is loaded just before, so this adds nothing: the
// script sees no global os at all, only require("os") (see the preload in runLua).
func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOsFuncs))
	return 1
}

// safeOsFuncs stands in for oslib_safe.go's osFuncs (time and date). That file says they were
// copied from gopher-lua, so gopher-lua's own are taken here: the health script does not call
// them, and what matters is which names exist.
var safeOsFuncs = gopherOsFuncs("time", "date")

func gopherOsFuncs(names ...string) map[string]lua.LGFunction {
	scratch := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer scratch.Close()
	scratch.Push(scratch.NewFunction(lua.OpenOs))
	scratch.Call(0, 1)
	mod := scratch.Get(-1).(*lua.LTable)
	funcs := make(map[string]lua.LGFunction, len(names))
	for _, name := range names {
		funcs[name] = mod.RawGetString(name).(*lua.LFunction).GFunction
	}
	return funcs
}

// decodeValue mirrors util/lua/lua.go decodeValue, which turns the unstructured object into Lua
// values: arrays become tables indexed from 1 (Append), maps tables with string keys (RawSetH),
// every number an LNumber (a float64), a json.Number a string, null and unknown types nil.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// Command kstatus prints the verdict of sigs.k8s.io/cli-utils' kstatus (the status library Flux
// and kpt use to decide whether a resource is reconciled) for Kubernetes objects read as JSON.
//
// Stdin holds one object, a JSON array of objects, or a List (kind ending in "List" with
// "items"). Stdout gets one JSON result per object, in input order: an object for a single input,
// an array otherwise. Each result is {"name", "status", "message", "conditions"}. The exit code
// is 0 when every object was judged, 1 when the input could not be read or kstatus refused it.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Name       string             `json:"name"`
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	objects, single, err := decode(raw)
	if err != nil {
		return err
	}
	verdicts := make([]verdict, 0, len(objects))
	for i, obj := range objects {
		v, err := judge(obj)
		if err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		verdicts = append(verdicts, v)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	if single {
		return enc.Encode(verdicts[0])
	}
	return enc.Encode(verdicts)
}

// decode returns the objects to judge and whether the input was a single object. It decodes
// with apimachinery's JSON, which keeps whole numbers int64 as unstructured accessors expect
// (encoding/json would make metadata.generation a float64, which kstatus rejects).
func decode(raw []byte) ([]map[string]interface{}, bool, error) {
	trimmed := strings.TrimSpace(string(raw))
	if strings.HasPrefix(trimmed, "[") {
		var items []map[string]interface{}
		if err := utiljson.Unmarshal(raw, &items); err != nil {
			return nil, false, fmt.Errorf("decoding JSON array: %w", err)
		}
		return items, false, nil
	}
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		return nil, false, fmt.Errorf("decoding JSON object: %w", err)
	}
	kind, _ := obj["kind"].(string)
	items, isList := obj["items"].([]interface{})
	if !strings.HasSuffix(kind, "List") || !isList {
		return []map[string]interface{}{obj}, true, nil
	}
	out := make([]map[string]interface{}, 0, len(items))
	for i, item := range items {
		m, ok := item.(map[string]interface{})
		if !ok {
			return nil, false, fmt.Errorf("items[%d] is not an object", i)
		}
		out = append(out, m)
	}
	return out, false, nil
}

func judge(obj map[string]interface{}) (verdict, error) {
	u := &unstructured.Unstructured{Object: obj}
	res, err := status.Compute(u)
	if err != nil {
		return verdict{}, err
	}
	conditions := res.Conditions
	if conditions == nil {
		conditions = []status.Condition{}
	}
	return verdict{
		Name:       u.GetName(),
		Status:     string(res.Status),
		Message:    res.Message,
		Conditions: conditions,
	}, nil
}

package envoy

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// ParseServices reads a services file into an IR, applies defaults and
// validates it. Decoding is strict: unknown fields, wrong types and
// duplicate keys are errors, each reported as "name:line: field: problem".
// Every problem is reported, not just the first.
//
// The format (every field but services[].name and listener.port optional;
// durations are Go durations like 250ms or 5s):
//
//	authz:                       # the ext_authz service (gavel authz)
//	  cluster: gavel_authz
//	  address: 127.0.0.1
//	  port: 9191
//	  timeout: 250ms
//	  max_request_bytes: 8192    # body buffered for routes with reads_body
//	services:
//	  - name: orders
//	    protocol: http           # or grpc (HTTP/2 upstream)
//	    fail_open: false         # true: allow when authz is unreachable
//	    listener: {address: 0.0.0.0, port: 10000}
//	    routes:                  # first match wins; default: one route "default" on /
//	      - name: health
//	        path: /healthz       # exact; or path_prefix
//	        public: true         # no ext_authz check
//	      - name: upload
//	        path_prefix: /upload
//	        methods: [POST, PUT]
//	        policy: orders/upload/allow   # default envoy/authz/allow
//	        reads_body: true
//	        timeout: 30s
//	      - name: events
//	        path_prefix: /ws
//	        websocket: true
//	    resilience:
//	      connect_timeout: 5s
//	      circuit_breakers:
//	        max_connections: 1024
//	        max_pending_requests: 1024
//	        max_requests: 1024
//	        max_retries: 3
//	        retry_budget: {budget_percent: 20, min_retry_concurrency: 3}
//	      outlier_detection: {consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 10}
//	      health_check: {path: /healthz, interval: 3s, timeout: 1s, unhealthy_threshold: 3, healthy_threshold: 1}
//	      lb: {policy: ring_hash, hash_header: x-user-id}   # or round_robin, least_request
//	    endpoints:
//	      - {address: 10.0.0.1, port: 8080, weight: 1}
func ParseServices(name string, src []byte) (IR, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return IR{}, fmt.Errorf("%s: %w", name, err)
	}
	var ir IR
	if len(doc.Content) == 0 {
		return IR{}, fmt.Errorf("%s: empty file: want a services: list", name)
	}
	d := decoder{file: name}
	d.decode(doc.Content[0], "", reflect.ValueOf(&ir).Elem())
	if err := errors.Join(d.errs...); err != nil {
		return IR{}, err
	}
	ir = ir.WithDefaults()
	if err := ir.Validate(); err != nil {
		return IR{}, fmt.Errorf("%s: %w", name, err)
	}
	return ir, nil
}

// decoder walks YAML nodes into IR values by their yaml tags, collecting
// errors that carry the file, line and field path.
type decoder struct {
	file string
	errs []error
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	if path == "" {
		path = "(top level)"
	}
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s: %s", d.file, n.Line, path, fmt.Sprintf(format, args...)))
}

var durationType = reflect.TypeFor[time.Duration]()

func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		d.fail(n, path, "aliases (*%s) are not supported; write the value out", n.Value)
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value: the default
	}
	if v.Type() == durationType {
		dur, err := time.ParseDuration(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(n, path, "want a duration like 250ms or 5s, got %q", n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, path, p.Elem())
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, path, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "want a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			d.fail(n, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.fail(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	case reflect.Uint32:
		u, err := strconv.ParseUint(n.Value, 0, 32)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.fail(n, path, "want a whole number from 0 to %d, got %s", uint32(math.MaxUint32), describe(n))
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "cannot decode into %s", v.Type()) // a bug in this package
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping (key: value), got %s", describe(n))
		return
	}
	t := v.Type()
	fields := make(map[string]int, t.NumField())
	known := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		fields[tag] = i
		known = append(known, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		fp := k.Value
		if path != "" {
			fp = path + "." + k.Value
		}
		idx, ok := fields[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			d.fail(k, path, "keys must be plain names")
		case !ok:
			d.fail(k, fp, "unknown field; known fields: %s", strings.Join(known, ", "))
		case seen[k.Value]:
			d.fail(k, fp, "set twice")
		default:
			seen[k.Value] = true
			d.decode(val, fp, v.Field(idx))
		}
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

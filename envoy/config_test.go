package envoy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseServicesErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"not yaml", "services: [", []string{"svc.yaml:", "yaml:"}},
		{"empty", "", []string{"svc.yaml: empty file"}},
		{"top level list", "- a", []string{"svc.yaml:1: (top level): want a mapping"}},
		{"unknown top field", "servicez: []", []string{`svc.yaml:1: servicez: unknown field`}},
		{"unknown service field", "services:\n  - name: a\n    listner: {port: 1}\n", []string{"svc.yaml:3: services[0].listner: unknown field; known fields: name, protocol, listener"}},
		{"unknown route field", "services:\n  - name: a\n    listener: {port: 1}\n    routes:\n      - name: r\n        prefix: /\n", []string{"svc.yaml:6: services[0].routes[0].prefix: unknown field"}},
		{"wrong type", "services:\n  - name: a\n    listener: {port: eighty}\n", []string{`svc.yaml:3: services[0].listener.port: want a whole number from 0 to 4294967295, got "eighty"`}},
		{"negative", "services:\n  - name: a\n    listener: {port: -1}\n", []string{"svc.yaml:3: services[0].listener.port: want a whole number"}},
		{"bad duration", "authz:\n  timeout: 250\n", []string{`svc.yaml:2: authz.timeout: want a duration like 250ms or 5s, got "250"`}},
		{"bad bool", "services:\n  - name: a\n    fail_open: yes\n", []string{`svc.yaml:3: services[0].fail_open: want true or false, got "yes"`}},
		{"string wanted", "services:\n  - name: [a]\n", []string{"svc.yaml:2: services[0].name: want a string, got a list"}},
		{"list wanted", "services: {name: a}\n", []string{"svc.yaml:1: services: want a list"}},
		{"set twice", "services:\n  - name: a\n    name: b\n", []string{"svc.yaml:3: services[0].name: set twice"}},
		{"alias", "x: &p {port: 1}\nservices:\n  - name: a\n    listener: *p\n", []string{"svc.yaml:1: x: unknown field", "svc.yaml:4: services[0].listener: aliases"}},
		{"several at once", "services:\n  - name: a\n    bogus: 1\n    endpoints:\n      - {address: 10.0.0.1, port: x}\n", []string{"svc.yaml:3: services[0].bogus", "svc.yaml:5: services[0].endpoints[0].port"}},
		{"invalid after parse", "services:\n  - name: a\n    listener: {port: 1}\n    resilience: {lb: {policy: ring_hash}}\n", []string{`svc.yaml: service "a": resilience.lb.hash_header is required`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseServices("svc.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseServicesAppliesDefaults(t *testing.T) {
	ir, err := ParseServices("m.yaml", []byte("services:\n  - name: a\n    listener: {port: 1}\n    fail_open: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := ir.Services[0]
	if !s.FailOpen || s.Protocol != ProtocolHTTP || len(s.Routes) != 1 || s.Routes[0].Policy != DefaultPolicy || ir.Authz.Port != DefaultAuthzPort {
		t.Errorf("defaults not applied: %+v", ir)
	}
}

// FuzzParseServices checks that parsing never panics and that whatever
// parses translates into resources that pass ValidateAll.
func FuzzParseServices(f *testing.F) {
	files, _ := filepath.Glob("testdata/in/*.yaml")
	for _, p := range files {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte("services:\n  - name: a\n    listener: {port: 1}\n    routes: [{name: r, path: /x, methods: [GET]}]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		ir, err := ParseServices("fuzz.yaml", src)
		if err != nil {
			return
		}
		// Validate should catch everything Translate can trip on, so a file
		// that parses must translate.
		res, err := Translate(ir)
		if err != nil {
			t.Fatalf("parsed but does not translate: %v", err)
		}
		if err := res.validate(); err != nil {
			t.Fatalf("Translate returned resources that fail ValidateAll: %v", err)
		}
	})
}

package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func TestReadMix(t *testing.T) {
	in := strings.Join([]string{
		"# a comment",
		"",
		`{"attributes":{"request":{"http":{"method":"GET","path":"/a"}}}}`,
		"   ",
		`  # indented comment`,
		`{"attributes":{"request":{"http":{"method":"POST","path":"/b"}},"contextExtensions":{"policy":"orders"}}}` + "\r",
		`{}`,
	}, "\n")
	reqs, err := readMix(strings.NewReader(in), "mix.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3", len(reqs))
	}
	if got := reqs[0].GetAttributes().GetRequest().GetHttp().GetPath(); got != "/a" {
		t.Errorf("request 1 path = %q, want /a", got)
	}
	if got := reqs[1].GetAttributes().GetContextExtensions()["policy"]; got != "orders" {
		t.Errorf("request 2 policy = %q, want orders (camelCase JSON names are accepted)", got)
	}
	if !proto.Equal(reqs[2], new(authv3.CheckRequest)) {
		t.Errorf("request 3 = %v, want empty", reqs[2])
	}
}

func TestReadMixErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr []string // substrings of the error
	}{
		{
			name:    "unknown field",
			in:      "# header\n{\"attributes\":{}}\n\n{\"atributes\":{}}\n",
			wantErr: []string{"mix.jsonl:4: ", "unknown field", "atributes"},
		},
		{
			name:    "not json",
			in:      "{\"attributes\":{}}\nGET /healthz\n",
			wantErr: []string{"mix.jsonl:2: "},
		},
		{
			name:    "wrong type",
			in:      `{"attributes":{"request":{"http":{"size":"big"}}}}`,
			wantErr: []string{"mix.jsonl:1: ", "size"},
		},
		{
			name:    "empty",
			in:      "\n# nothing here\n\n",
			wantErr: []string{"mix.jsonl: no requests"},
		},
		{
			name:    "line too long",
			in:      "{}\n" + strings.Repeat(" ", maxMixLine+1) + "\n",
			wantErr: []string{"mix.jsonl:2: line longer than"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readMix(strings.NewReader(tt.in), "mix.jsonl")
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadMixMissingFile(t *testing.T) {
	if _, err := loadMix("testdata/does-not-exist.jsonl"); err == nil || !strings.Contains(err.Error(), "does-not-exist.jsonl") {
		t.Errorf("loadMix(missing) error = %v, want one naming the file", err)
	}
}

func FuzzReadMix(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("# comment\n\n{}\n"))
	f.Add([]byte(`{"attributes":{"request":{"http":{"method":"GET","path":"/a","headers":{"x-api-key":"k"}}}}}`))
	f.Add([]byte("{\"attributes\":{\"context_extensions\":{\"policy\":\"p\"}}}\r\n{\"atributes\":1}\n"))
	f.Add([]byte(`{"attributes":{"metadata_context":{"filter_metadata":{"f":{"n":1.5,"s":"x","l":[true,null]}}}}}`))
	if data, err := os.ReadFile("testdata/mix.jsonl"); err == nil {
		lines := bytes.SplitN(data, []byte("\n"), 4)
		f.Add(bytes.Join(lines[:min(3, len(lines))], []byte("\n")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs, err := readMix(bytes.NewReader(data), "fuzz.jsonl")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.jsonl:") {
				t.Fatalf("error %q does not name the input", err)
			}
			return
		}
		if len(reqs) == 0 {
			t.Fatal("no requests and no error")
		}
		if lines := bytes.Count(data, []byte("\n")) + 1; len(reqs) > lines {
			t.Fatalf("%d requests from %d lines", len(reqs), lines)
		}
		// What was read must survive a round trip through the writer's
		// format (one compact protojson object per line).
		var out bytes.Buffer
		for _, r := range reqs {
			b, err := protojson.Marshal(r)
			if err != nil {
				t.Fatalf("marshal %v: %v", r, err)
			}
			if bytes.ContainsAny(b, "\n") {
				t.Fatalf("protojson.Marshal produced a newline: %q", b)
			}
			out.Write(b)
			out.WriteByte('\n')
		}
		again, err := readMix(&out, "roundtrip")
		if err != nil {
			t.Fatalf("re-reading marshaled mix: %v", err)
		}
		if len(again) != len(reqs) {
			t.Fatalf("round trip: %d requests, want %d", len(again), len(reqs))
		}
		for i := range reqs {
			if !proto.Equal(reqs[i], again[i]) {
				t.Fatalf("round trip of request %d: got %v, want %v", i, again[i], reqs[i])
			}
		}
	})
}

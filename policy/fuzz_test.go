package policy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/policy"
)

func FuzzReadTarGz(f *testing.F) {
	b := newBundle(f, map[string]string{
		"/envoy/authz/authz.rego": "package envoy.authz\n\nallow if input.ok\n",
		"/envoy/authz/data.json":  `{"open": true}`,
	})
	var valid bytes.Buffer
	if err := b.WriteTarGz(&valid); err != nil {
		f.Fatal(err)
	}
	f.Add(valid.Bytes())
	f.Add(tarGz(f, tarEntry{name: "/d/", typeflag: tar.TypeDir}, reg("./d/x.rego", "package d\n"), reg("/d/notes.txt", "x")))
	f.Add(tarGz(f, reg("../evil.rego", "package evil\n")))
	f.Add(tarGz(f, tarEntry{name: "/l.rego", typeflag: tar.TypeSymlink, linkname: "/etc/passwd"}))
	f.Add(gzipBytes(f, []byte("not a tar")))
	f.Add(valid.Bytes()[:valid.Len()/2])
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00})
	f.Add([]byte("package x"))
	f.Add([]byte{})

	f.Fuzz(checkReadTarGz)
}

// FuzzReadTar fuzzes the tar layer under a valid gzip stream, which random
// bytes rarely get past.
func FuzzReadTar(f *testing.F) {
	f.Add(plainTar(f, reg("/.manifest", manifest), reg("/a/a.rego", "package a\n"), reg("/a/data.json", "{}")))
	f.Add(plainTar(f, tarEntry{name: "./", typeflag: tar.TypeDir}, reg("./a/../b.rego", "package b\n")))
	f.Add(plainTar(f, reg("/a.rego", "x"), reg("a.rego", "y")))
	f.Add(plainTar(f, tarEntry{name: "/h.rego", typeflag: tar.TypeLink, linkname: "/a.rego"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var gz bytes.Buffer
		w, err := gzip.NewWriterLevel(&gz, gzip.NoCompression)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw)
		w.Close()
		checkReadTarGz(t, gz.Bytes())
	})
}

func plainTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Linkname: e.linkname, Mode: 0o644, Size: int64(len(e.body))}
		if e.typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkReadTarGz holds ReadTarGz to its contract on any archive: no panic;
// on success, slash-rooted clean paths without "..", a 64-hex revision, and
// a write/read round trip that keeps the revision.
func checkReadTarGz(t *testing.T, archive []byte) {
	limits := policy.Limits{MaxArchiveBytes: 1 << 20, MaxContentBytes: 1 << 20, MaxFiles: 100}
	b, err := policy.ReadTarGz("fuzz", bytes.NewReader(archive), limits)
	if err != nil {
		if b != nil {
			t.Fatalf("error %v with a non-nil bundle", err)
		}
		return
	}
	for p := range b.Files {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
			t.Fatalf("path %q is not slash-rooted and clean", p)
		}
		if hasDotDotSegment(p) {
			t.Fatalf("path %q has a .. segment", p)
		}
	}
	if !hexRevision.MatchString(b.Revision) {
		t.Fatalf("revision %q is not 64 hex digits", b.Revision)
	}
	var buf bytes.Buffer
	if err := b.WriteTarGz(&buf); err != nil {
		t.Fatalf("WriteTarGz of a bundle just read: %v", err)
	}
	again, err := policy.ReadTarGz("fuzz", &buf, policy.Limits{})
	if err != nil {
		t.Fatalf("reading back a written bundle: %v", err)
	}
	if again.Revision != b.Revision {
		t.Fatalf("revision changed on a round trip: %s, then %s", b.Revision, again.Revision)
	}
}

func hasDotDotSegment(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == ".." {
			return true
		}
	}
	return false
}

func FuzzParseDecision(f *testing.F) {
	for _, s := range []string{
		`true`, `false`, `null`, `1`, `"allow"`, `[]`,
		`{"allowed": true}`,
		`{"allowed": false, "http_status": 403, "body": "no", "headers": {"a": "1", "b": ["2", "3"]}}`,
		`{"allowed": true, "headers": [{"a": "1"}, {"a": ["2"]}], "response_headers_to_add": {"x": "y"}}`,
		`{"allowed": true, "request_headers_to_remove": ["a"], "query_parameters_to_set": {"q": "1"}, "query_parameters_to_remove": "p"}`,
		`{"allowed": true, "dynamic_metadata": {"k": {"n": 1}}}`,
		`{"decision": "ask", "reason": "r", "agent_reason": "a", "rule_ids": ["x"], "ttl": "30s"}`,
		`{"decision": "deny", "reasons": ["a", "b"], "ttl": 1.5, "updated_input": {"command": "ls"}}`,
		`{"decision": "maybe"}`,
		`{"allowed": "yes"}`,
		`{"allowed": true, "http_status": 999}`,
		`{"allowed": true, "http_status": 1e400}`,
		`{"allowed": true, "ttl": 1e300}`,
		`{"allowed": true, "ttl": -1}`,
		`{"allowed": true, "headers": {"a": [1]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return
		}
		d, err := policy.ParseDecision(v)
		if err != nil {
			if !errors.Is(err, policy.ErrInvalidDecision) {
				t.Fatalf("error %v does not wrap ErrInvalidDecision", err)
			}
			return
		}
		if d.TTL < 0 {
			t.Fatalf("negative TTL %v from %s", d.TTL, doc)
		}
		if d.HTTPStatus != 0 && (d.HTTPStatus < 100 || d.HTTPStatus > 599) {
			t.Fatalf("http_status %d accepted", d.HTTPStatus)
		}
		if _, isBool := v.(bool); !isBool && d.Fields == nil {
			t.Fatal("an object result must keep its fields")
		}
	})
}

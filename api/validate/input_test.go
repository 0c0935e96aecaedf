package validate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const diff = `diff --git a/main.go b/main.go
index 83db48f..bf269f4 100644
--- a/main.go
+++ b/main.go
@@ -1,4 +1,5 @@
 package main
+import "crypto/tls"
 
 func main() {
-	println("hi")
+	_ = tls.Config{InsecureSkipVerify: true}
 }
diff --git a/new.txt b/new.txt
new file mode 100644
index 0000000..3b18e51
--- /dev/null
+++ b/new.txt
@@ -0,0 +1,2 @@
+hello
+world
diff --git a/gone.txt b/gone.txt
deleted file mode 100644
index 3b18e51..0000000
--- a/gone.txt
+++ /dev/null
@@ -1 +0,0 @@
-bye
`

func TestInputFromDiff(t *testing.T) {
	doc, err := Input(Request{Diff: diff}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(doc)
	want := `{"files":[` +
		`{"lines":[{"line":2,"text":"import \"crypto/tls\""},{"line":5,"text":"\t_ = tls.Config{InsecureSkipVerify: true}"}],"path":"main.go","whole":false},` +
		`{"lines":[{"line":1,"text":"hello"},{"line":2,"text":"world"}],"path":"new.txt","size":12,"whole":true}]}`
	if string(got) != want {
		t.Errorf("input\n got %s\nwant %s", got, want)
	}
}

func TestInputFromFiles(t *testing.T) {
	doc, err := Input(Request{Files: []File{{Path: "a.py", Content: "x = 1\r\ny = 2\n"}, {Path: "empty", Content: ""}}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(doc)
	want := `{"files":[{"lines":[{"line":1,"text":"x = 1"},{"line":2,"text":"y = 2"}],"path":"a.py","size":13,"whole":true},` +
		`{"lines":[],"path":"empty","size":0,"whole":true}]}`
	if string(got) != want {
		t.Errorf("input\n got %s\nwant %s", got, want)
	}
}

func TestInputErrors(t *testing.T) {
	for _, tc := range []struct {
		req    Request
		limits Limits
		want   string
	}{
		{Request{}, Limits{}, "nothing to validate"},
		{Request{Files: []File{{Content: "x"}}}, Limits{}, "files[0]: path is empty"},
		{Request{Diff: "just some text\n"}, Limits{}, "no file changes found"},
		{Request{Diff: "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n+only one line\n"}, Limits{}, "diff:"},
		{Request{Files: []File{{Path: "a", Content: "12345"}}}, Limits{MaxBytes: 4}, "5 bytes of content, over the limit of 4"},
		{Request{Files: []File{{Path: "a"}, {Path: "b"}}}, Limits{MaxFiles: 1}, "2 files, over the limit of 1"},
	} {
		_, err := Input(tc.req, tc.limits)
		if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Input(%+v) = %v, want a bad request containing %q", tc.req, err, tc.want)
		}
	}
}

func FuzzInput(f *testing.F) {
	f.Add("a.go", "package a\n", diff)
	f.Add("", "", "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")
	f.Fuzz(func(t *testing.T, path, content, d string) {
		req := Request{Diff: d}
		if path != "" || content != "" {
			req.Files = []File{{Path: path, Content: content}}
		}
		doc, err := Input(req, Limits{})
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		files := doc["files"].([]any)
		for _, f := range files {
			m := f.(map[string]any)
			if m["path"] == "" && path != "" {
				t.Fatalf("file without a path: %v", m)
			}
			last := 0
			for _, l := range m["lines"].([]any) {
				n := l.(map[string]any)["line"].(int)
				if n <= last {
					t.Fatalf("line numbers not increasing: %v", m["lines"])
				}
				last = n
			}
		}
		if _, err := json.Marshal(doc); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDiffNames(t *testing.T) {
	for d, want := range map[string]string{
		"--- a/net.go\n+++ b/net.go\n@@ -1 +1 @@\n-x\n+y\n":                               "net.go",
		"--- net.go.orig\n+++ net.go\n@@ -1 +1 @@\n-x\n+y\n":                              "net.go",
		"--- /dev/null\n+++ b/new.go\n@@ -0,0 +1 @@\n+y\n":                                "new.go",
		"diff --git a/b/x.go b/b/x.go\n--- a/b/x.go\n+++ b/b/x.go\n@@ -1 +1 @@\n-x\n+y\n": "b/x.go",
	} {
		doc, err := Input(Request{Diff: d}, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if got := doc["files"].([]any)[0].(map[string]any)["path"]; got != want {
			t.Errorf("path %v, want %s, from\n%s", got, want, d)
		}
	}
}

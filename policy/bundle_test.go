package policy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gavel-dev/gavel/policy"
)

// sampleFiles is a small bundle with one of every kind of file a bundle keeps.
var sampleFiles = map[string]string{
	"/.manifest":              `{"roots": ["envoy", "gavel"], "rego_version": 1}`,
	"/envoy/authz/authz.rego": "package envoy.authz\n\nallow if input.ok\n",
	"/envoy/authz/data.json":  `{"open": true}`,
	"/gavel/limits/data.yaml": "max: 3\n",
	"/gavel/more/data.yml":    "min: 1\n",
}

// tarEntry is one entry of a hand-built tarball.
type tarEntry struct {
	name     string
	body     string
	typeflag byte
	linkname string
}

func reg(name, body string) tarEntry { return tarEntry{name: name, body: body, typeflag: tar.TypeReg} }

// tarGz builds a gzip'd tarball from entries, in order, as other tools
// (opa build, GNU tar) would write it.
func tarGz(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typeflag, Linkname: e.linkname, Mode: 0o644}
		if e.typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if e.typeflag == tar.TypeDir {
			hdr.Mode = 0o755
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
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeTree writes files (slash paths relative to dir) below dir.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, s := range files {
		full := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sortedPaths(b *policy.Bundle) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for p := range b.Files {
			if !yield(p) {
				return
			}
		}
	})
}

var hexRevision = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestSameContentSameRevision(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, sampleFiles)
	// Files a bundle does not keep, and hidden directories, must not change
	// the revision.
	writeTree(t, dir, map[string]string{
		"/README.md":              "# docs",
		"/envoy/authz/notes.txt":  "not policy",
		"/envoy/authz/other.json": `{"not": "data.json"}`,
		"/.git/hooks/pre.rego":    "package git\n",
		"/envoy/.cache/data.json": `{"hidden": true}`,
		"/envoy/sub/.manifest":    `{"roots": ["nested"]}`,
	})
	// A symbolic link is not followed.
	if err := os.Symlink(filepath.Join(dir, "envoy", "authz", "authz.rego"), filepath.Join(dir, "link.rego")); err != nil {
		t.Fatal(err)
	}

	fromDir, err := policy.LoadDir(dir, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/.manifest", "/envoy/authz/authz.rego", "/envoy/authz/data.json", "/gavel/limits/data.yaml", "/gavel/more/data.yml"}
	if got := sortedPaths(fromDir); !slices.Equal(got, want) {
		t.Fatalf("LoadDir kept %q, want %q", got, want)
	}
	if !hexRevision.MatchString(fromDir.Revision) {
		t.Fatalf("revision %q is not 64 hex digits", fromDir.Revision)
	}
	if got := fromDir.ShortRevision(); got != fromDir.Revision[:12] {
		t.Errorf("ShortRevision = %q", got)
	}

	var written bytes.Buffer
	if err := fromDir.WriteTarGz(&written); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := fromDir.WriteTarGz(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(written.Bytes(), again.Bytes()) {
		t.Error("WriteTarGz is not deterministic")
	}
	tarPath := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(tarPath, written.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// As `opa build` writes it: slash-rooted names, plus files it does not
	// keep.
	opaBuild := []tarEntry{{name: "/envoy/", typeflag: tar.TypeDir}}
	for _, p := range want {
		opaBuild = append(opaBuild, reg(p, sampleFiles[p]))
	}
	opaBuild = append(opaBuild, reg("/README.md", "docs"))
	// Hidden directories are skipped in a tarball as in a directory.
	opaBuild = append(opaBuild, reg("/.git/hooks/pre.rego", "package git\n"), reg("/envoy/.cache/data.json", `{"hidden": true}`))
	// As `tar -C dir -czf - .` writes it: "./" prefixes and directories.
	dotSlash := []tarEntry{{name: "./", typeflag: tar.TypeDir}, {name: "./envoy/authz/", typeflag: tar.TypeDir}}
	for _, p := range want {
		dotSlash = append(dotSlash, reg("."+p, sampleFiles[p]))
	}

	tests := []struct {
		name string
		load func() (*policy.Bundle, error)
	}{
		{"LoadBundle of the directory", func() (*policy.Bundle, error) { return policy.LoadBundle(dir, policy.Limits{}) }},
		{"WriteTarGz then ReadTarGz", func() (*policy.Bundle, error) {
			return policy.ReadTarGz("w", bytes.NewReader(written.Bytes()), policy.Limits{})
		}},
		{"LoadBundle of the tarball", func() (*policy.Bundle, error) { return policy.LoadBundle(tarPath, policy.Limits{}) }},
		{"opa build tarball", func() (*policy.Bundle, error) {
			return policy.ReadTarGz("opa", bytes.NewReader(tarGz(t, opaBuild...)), policy.Limits{})
		}},
		{"tar with ./ prefixes", func() (*policy.Bundle, error) {
			return policy.ReadTarGz("tar", bytes.NewReader(tarGz(t, dotSlash...)), policy.Limits{})
		}},
		{"NewBundle of relative paths", func() (*policy.Bundle, error) {
			files := map[string][]byte{"README.md": []byte("x")}
			for p, s := range sampleFiles {
				files[strings.TrimPrefix(p, "/")] = []byte(s)
			}
			return policy.NewBundle("mem", files)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.load()
			if err != nil {
				t.Fatal(err)
			}
			if b.Revision != fromDir.Revision {
				t.Errorf("revision %s, want %s (the directory's)", b.Revision, fromDir.Revision)
			}
			if got := sortedPaths(b); !slices.Equal(got, want) {
				t.Errorf("kept %q, want %q", got, want)
			}
			for p, content := range fromDir.Files {
				if !bytes.Equal(b.Files[p], content) {
					t.Errorf("%s: content %q, want %q", p, b.Files[p], content)
				}
			}
		})
	}
}

func TestRevisionTracksContent(t *testing.T) {
	base := newBundle(t, map[string]string{"/a/p.rego": "package a\n"})
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"content changed", map[string]string{"/a/p.rego": "package a\n\n"}},
		{"file renamed", map[string]string{"/a/q.rego": "package a\n"}},
		{"file added", map[string]string{"/a/p.rego": "package a\n", "/a/data.json": "{}"}},
		// The encoding is length-prefixed: moving bytes from a path into its
		// content must change the revision.
		{"bytes moved between path and content", map[string]string{"/a/p.rego": "", "/a/p.regopackage a\n": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b := newBundle(t, tt.files); b.Revision == base.Revision {
				t.Errorf("revision unchanged: %s", b.Revision)
			}
		})
	}
}

func TestReadTarGzRejects(t *testing.T) {
	valid := tarGz(t, reg("/.manifest", manifest), reg("/a/a.rego", "package a\n"), reg("/a/data.json", "{}"))
	// A gzip bomb: 2 MiB of zeros in one small file compress to a few KiB.
	bomb := tarGz(t, reg("/a/data.json", strings.Repeat("\x00", 2<<20)))
	if len(bomb) > 16<<10 {
		t.Fatalf("bomb is %d bytes compressed; the test wants a small archive", len(bomb))
	}
	// A file whose body is cut short.
	truncated := func() []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: "/a/a.rego", Typeflag: tar.TypeReg, Size: 4096, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte("package a\n")); err != nil {
			t.Fatal(err)
		}
		return gzipBytes(t, buf.Bytes()[:1024])
	}()

	tests := []struct {
		name    string
		archive []byte
		limits  policy.Limits
		tooBig  bool
		want    []string
	}{
		{"parent directory", tarGz(t, reg("../evil.rego", "package evil\n")), policy.Limits{}, false,
			[]string{`"../evil.rego"`, "leaves the bundle root"}},
		{"parent directory inside a path", tarGz(t, reg("a/../../evil.rego", "package evil\n")), policy.Limits{}, false,
			[]string{`"a/../../evil.rego"`, "leaves the bundle root"}},
		{"parent directory after a root slash", tarGz(t, reg("/../evil.rego", "package evil\n")), policy.Limits{}, false,
			[]string{"leaves the bundle root"}},
		{"backslash", tarGz(t, reg(`a\..\evil.rego`, "package evil\n")), policy.Limits{}, false,
			[]string{"backslash"}},
		{"symlink", tarGz(t, tarEntry{name: "/a/link.rego", typeflag: tar.TypeSymlink, linkname: "/etc/passwd"}), policy.Limits{}, false,
			[]string{`"/a/link.rego"`, "only regular files and directories", "'2'"}},
		{"hardlink", tarGz(t, reg("/a/a.rego", "package a\n"), tarEntry{name: "/a/b.rego", typeflag: tar.TypeLink, linkname: "/a/a.rego"}), policy.Limits{}, false,
			[]string{`"/a/b.rego"`, "only regular files and directories", "'1'"}},
		{"device", tarGz(t, tarEntry{name: "/dev/zero.rego", typeflag: tar.TypeChar}), policy.Limits{}, false,
			[]string{"only regular files and directories"}},
		{"archive over MaxArchiveBytes", valid, policy.Limits{MaxArchiveBytes: 64}, true,
			[]string{"archive exceeds 64 bytes"}},
		{"gzip bomb over MaxContentBytes", bomb, policy.Limits{MaxContentBytes: 1 << 20}, true,
			[]string{"content exceeds 1048576 bytes"}},
		{"content over MaxContentBytes across files", tarGz(t, reg("/a/a.rego", strings.Repeat("#", 600)), reg("/b/b.rego", strings.Repeat("#", 600))),
			policy.Limits{MaxContentBytes: 1000}, true, []string{"content exceeds 1000 bytes"}},
		{"files that are not kept still count toward content", tarGz(t, reg("/big.bin", strings.Repeat("x", 2000))),
			policy.Limits{MaxContentBytes: 1000}, true, []string{"content exceeds 1000 bytes"}},
		{"too many files", tarGz(t, reg("/a.rego", "package a\n"), reg("/b.rego", "package b\n"), reg("/c.rego", "package c\n")),
			policy.Limits{MaxFiles: 2}, true, []string{"more than 2 files"}},
		{"not gzip", []byte("package a\n\nallow := true\n"), policy.Limits{}, false,
			[]string{"not a gzip archive"}},
		{"empty input", nil, policy.Limits{}, false,
			[]string{"not a gzip archive"}},
		{"corrupt tar", gzipBytes(t, bytes.Repeat([]byte("not a tar header "), 64)), policy.Limits{}, false,
			[]string{"corrupt tar archive"}},
		{"corrupt gzip stream", valid[:len(valid)/2], policy.Limits{}, false,
			[]string{"corrupt tar archive"}},
		{"truncated file", truncated, policy.Limits{}, false,
			[]string{`entry "/a/a.rego"`, "unexpected EOF"}},
		{"duplicate entry", tarGz(t, reg("/a/a.rego", "package a\n"), reg("a/a.rego", "package b\n")), policy.Limits{}, false,
			[]string{`entry "a/a.rego" appears twice`}},
		{"parent directory that stays inside the root", tarGz(t, reg("./a/x/../b.rego", "package a\n"), reg("/a/b.rego", "package a\n")), policy.Limits{}, false,
			[]string{"leaves the bundle root"}},
		{"duplicate entry through ./ and //", tarGz(t, reg("./a//b.rego", "package a\n"), reg("/a/./b.rego", "package a\n")), policy.Limits{}, false,
			[]string{"appears twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := policy.ReadTarGz("upload.tar.gz", bytes.NewReader(tt.archive), tt.limits)
			if err == nil {
				t.Fatalf("accepted, files %q", sortedPaths(b))
			}
			wantErr(t, err, append([]string{"upload.tar.gz"}, tt.want...)...)
			if got := errors.Is(err, policy.ErrBundleTooLarge); got != tt.tooBig {
				t.Errorf("errors.Is(err, ErrBundleTooLarge) = %v, want %v (err: %v)", got, tt.tooBig, err)
			}
		})
	}
}

func TestReadTarGzWithinLimits(t *testing.T) {
	// Exactly at every limit is accepted.
	archive := tarGz(t, reg("/a.rego", "package a\n"), reg("/b.rego", "package b\n"))
	limits := policy.Limits{MaxArchiveBytes: int64(len(archive)), MaxContentBytes: 20, MaxFiles: 2}
	b, err := policy.ReadTarGz("edge", bytes.NewReader(archive), limits)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 2 {
		t.Errorf("kept %q", sortedPaths(b))
	}
}

func TestLoadDirLimits(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"/a/a.rego": "package a\n", "/b/b.rego": "package b\n", "/c/data.json": "{}"})
	tests := []struct {
		name   string
		limits policy.Limits
		want   string
	}{
		{"too many files", policy.Limits{MaxFiles: 2}, "more than 2 files"},
		{"content", policy.Limits{MaxContentBytes: 15}, "content exceeds 15 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.LoadDir(dir, tt.limits)
			wantErr(t, err, tt.want)
			if !errors.Is(err, policy.ErrBundleTooLarge) {
				t.Errorf("not ErrBundleTooLarge: %v", err)
			}
		})
	}
	if _, err := policy.LoadBundle(filepath.Join(dir, "missing"), policy.Limits{}); err == nil {
		t.Error("LoadBundle of a missing path succeeded")
	}
}

func TestNewBundleRejectsEscapingPaths(t *testing.T) {
	for _, p := range []string{"../x.rego", "a/../../x.rego", "a\\x.rego", "a\x00.rego", ""} {
		t.Run(p, func(t *testing.T) {
			if _, err := policy.NewBundle("mem", map[string][]byte{p: []byte("package x\n")}); err == nil {
				t.Errorf("NewBundle accepted %q", p)
			}
		})
	}
}

package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Limits bound what a bundle may hold. Zero values mean the defaults.
type Limits struct {
	// MaxArchiveBytes caps the compressed size of a bundle tarball (default 32 MiB).
	MaxArchiveBytes int64
	// MaxContentBytes caps the total size of the bundle's files (default 64 MiB).
	MaxContentBytes int64
	// MaxFiles caps the number of files in a bundle (default 10,000).
	MaxFiles int
}

func (l Limits) withDefaults() Limits {
	if l.MaxArchiveBytes <= 0 {
		l.MaxArchiveBytes = 32 << 20
	}
	if l.MaxContentBytes <= 0 {
		l.MaxContentBytes = 64 << 20
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = 10_000
	}
	return l
}

// ErrBundleTooLarge is returned when a bundle exceeds its [Limits].
var ErrBundleTooLarge = errors.New("bundle too large")

// Bundle is the raw content of a policy bundle: its files by slash-rooted path
// ("/envoy/authz/policy.rego", "/data.json", "/.manifest"). Only the files
// that make up a bundle are kept: Rego modules, data.json and data.yaml
// documents, the manifest and signatures.
type Bundle struct {
	// Source names where the bundle came from, for messages.
	Source string
	// Files maps slash-rooted paths to content.
	Files map[string][]byte
	// Revision is the hex sha256 of the bundle's content: the sorted paths and
	// the bytes of each file. A directory and a tarball of it have the same
	// revision.
	Revision string
}

// NewBundle builds a bundle from files (paths are cleaned and slash-rooted)
// and computes its revision.
func NewBundle(source string, files map[string][]byte) (*Bundle, error) {
	b := &Bundle{Source: source, Files: make(map[string][]byte, len(files))}
	for p, content := range files {
		clean, err := cleanBundlePath(p)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", source, err)
		}
		if !isBundleFile(clean) {
			continue
		}
		b.Files[clean] = content
	}
	b.Revision = revisionOf(b.Files)
	return b, nil
}

// ShortRevision is the first 12 hex digits of the revision, for logs.
func (b *Bundle) ShortRevision() string { return shortRevision(b.Revision) }

func shortRevision(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

func revisionOf(files map[string][]byte) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	h := sha256.New()
	var n [8]byte
	for _, p := range paths {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
		binary.BigEndian.PutUint64(n[:], uint64(len(files[p])))
		h.Write(n[:])
		h.Write(files[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// isBundleFile reports whether a cleaned path is part of a bundle's content.
func isBundleFile(p string) bool {
	base := path.Base(p)
	switch {
	case strings.HasSuffix(base, ".rego"):
		return true
	case base == "data.json", base == "data.yaml", base == "data.yml":
		return true
	case p == "/.manifest", p == "/.signatures.json":
		return true
	}
	return false
}

// inHiddenDir reports whether a cleaned path lies below a hidden directory
// (.git, .github): such files are not part of a bundle, from a directory or
// a tarball alike.
func inHiddenDir(clean string) bool {
	for _, part := range strings.Split(strings.Trim(path.Dir(clean), "/"), "/") {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}

// cleanBundlePath makes p slash-rooted and refuses paths that leave the
// bundle root. A leading "/" or "./" is the bundle root, as in tarballs that
// `opa build` writes.
func cleanBundlePath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty file path")
	}
	if strings.ContainsAny(p, "\\\x00") {
		return "", fmt.Errorf("file %q: backslash or NUL in path", p)
	}
	rel := strings.TrimLeft(strings.TrimPrefix(p, "./"), "/")
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return "", fmt.Errorf("file %q: path leaves the bundle root", p)
		}
	}
	return path.Clean("/" + rel), nil
}

// LoadBundle reads a bundle from a directory or from an OPA bundle tarball
// (.tar.gz), whichever path names.
func LoadBundle(p string, limits Limits) (*Bundle, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("load bundle: %w", err)
	}
	if info.IsDir() {
		return LoadDir(p, limits)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("load bundle: %w", err)
	}
	defer f.Close()
	return ReadTarGz(p, f, limits)
}

// LoadDir reads a bundle from a directory tree. Hidden directories (.git) are
// skipped; symbolic links are not followed.
func LoadDir(dir string, limits Limits) (*Bundle, error) {
	return LoadFS(dir, os.DirFS(dir), limits)
}

// LoadFS reads a bundle from a file system, such as the embedded default bundle.
func LoadFS(source string, fsys fs.FS, limits Limits) (*Bundle, error) {
	limits = limits.withDefaults()
	files := map[string][]byte{}
	var total int64
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		clean, err := cleanBundlePath(p)
		if err != nil {
			return err
		}
		if !isBundleFile(clean) {
			return nil
		}
		if len(files) >= limits.MaxFiles {
			return fmt.Errorf("%w: more than %d files", ErrBundleTooLarge, limits.MaxFiles)
		}
		content, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		total += int64(len(content))
		if total > limits.MaxContentBytes {
			return fmt.Errorf("%w: content exceeds %d bytes", ErrBundleTooLarge, limits.MaxContentBytes)
		}
		files[clean] = content
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", source, err)
	}
	return NewBundle(source, files)
}

// ReadTarGz reads an OPA bundle tarball. Entries whose path leaves the bundle
// root, links, and archives over the size limits are refused with an error
// that names the problem.
func ReadTarGz(source string, r io.Reader, limits Limits) (*Bundle, error) {
	limits = limits.withDefaults()
	raw, err := io.ReadAll(io.LimitReader(r, limits.MaxArchiveBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", source, err)
	}
	if int64(len(raw)) > limits.MaxArchiveBytes {
		return nil, fmt.Errorf("read bundle %s: %w: archive exceeds %d bytes", source, ErrBundleTooLarge, limits.MaxArchiveBytes)
	}
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: not a gzip archive: %w", source, err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read bundle %s: corrupt tar archive: %w", source, err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("read bundle %s: entry %q: only regular files and directories are allowed (type %q)", source, hdr.Name, hdr.Typeflag)
		}
		clean, err := cleanBundlePath(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("read bundle %s: %w", source, err)
		}
		if len(files) >= limits.MaxFiles {
			return nil, fmt.Errorf("read bundle %s: %w: more than %d files", source, ErrBundleTooLarge, limits.MaxFiles)
		}
		remaining := limits.MaxContentBytes - total
		content, err := io.ReadAll(io.LimitReader(tr, remaining+1))
		if err != nil {
			return nil, fmt.Errorf("read bundle %s: entry %q: %w", source, hdr.Name, err)
		}
		total += int64(len(content))
		if total > limits.MaxContentBytes {
			return nil, fmt.Errorf("read bundle %s: %w: content exceeds %d bytes", source, ErrBundleTooLarge, limits.MaxContentBytes)
		}
		if !isBundleFile(clean) || inHiddenDir(clean) {
			continue
		}
		if _, dup := files[clean]; dup {
			return nil, fmt.Errorf("read bundle %s: entry %q appears twice", source, hdr.Name)
		}
		files[clean] = content
	}
	return NewBundle(source, files)
}

// WriteTarGz writes b as an OPA bundle tarball with deterministic ordering
// and timestamps, so the same content gives the same bytes.
func (b *Bundle) WriteTarGz(w io.Writer) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	paths := make([]string, 0, len(b.Files))
	for p := range b.Files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		hdr := &tar.Header{Name: p, Mode: 0o644, Size: int64(len(b.Files[p])), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
		if _, err := tw.Write(b.Files[p]); err != nil {
			return fmt.Errorf("write bundle: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return gz.Close()
}

// Package validate is gavel's validation service: files, or a unified
// diff, checked against the bundle's validation rules (secrets, forbidden
// patterns per language, licence headers, size limits). The findings come
// from Rego (entry point gavel/validate/findings), so a policy owner adds a
// rule the way they add any other.
package validate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bluekeyes/go-gitdiff/gitdiff"
)

// File is one file to check, whole.
type File struct {
	Path    string `json:"path" jsonschema:"the file's path, relative to the project or absolute"`
	Content string `json:"content" jsonschema:"the file's whole content"`
}

// Request is what to check: whole files, a unified diff (only its added
// lines are checked), or both.
type Request struct {
	Files []File `json:"files,omitempty"`
	Diff  string `json:"diff,omitempty"`
}

// Limits bound a request.
type Limits struct {
	// MaxFiles defaults to 1000.
	MaxFiles int
	// MaxBytes bounds the total content and diff size (default 8 MiB).
	MaxBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = 1000
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 8 << 20
	}
	return l
}

// ErrBadRequest is wrapped by every error about the request itself.
var ErrBadRequest = errors.New("bad validation request")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// Input builds the policy input:
//
//	{"files": [{"path": ..., "size": <bytes>, "whole": true|false,
//	            "lines": [{"line": 1, "text": "..."}, ...]}]}
//
// A whole file has every line and its size; a file from a diff has only
// its added lines, numbered as in the new file, and whole is true only for
// a file the diff creates. Deleted files are left out.
func Input(req Request, limits Limits) (map[string]any, error) {
	limits = limits.withDefaults()
	total := len(req.Diff)
	for _, f := range req.Files {
		total += len(f.Content)
	}
	if total > limits.MaxBytes {
		return nil, bad("%d bytes of content, over the limit of %d", total, limits.MaxBytes)
	}
	if len(req.Files) == 0 && strings.TrimSpace(req.Diff) == "" {
		return nil, bad("nothing to validate: give files (path, content) or a unified diff")
	}
	var files []any
	for i, f := range req.Files {
		if f.Path == "" {
			return nil, bad("files[%d]: path is empty", i)
		}
		files = append(files, map[string]any{
			"path":  f.Path,
			"size":  len(f.Content),
			"whole": true,
			"lines": numbered(f.Content),
		})
	}
	if strings.TrimSpace(req.Diff) != "" {
		diffFiles, err := fromDiff(req.Diff)
		if err != nil {
			return nil, err
		}
		files = append(files, diffFiles...)
	}
	if len(files) > limits.MaxFiles {
		return nil, bad("%d files, over the limit of %d", len(files), limits.MaxFiles)
	}
	return map[string]any{"files": files}, nil
}

// numbered splits content into lines numbered from 1. A trailing newline
// does not start another line.
func numbered(content string) []any {
	content = strings.TrimSuffix(content, "\n")
	if content == "" {
		return []any{}
	}
	parts := strings.Split(content, "\n")
	lines := make([]any, len(parts))
	for i, p := range parts {
		lines[i] = map[string]any{"line": i + 1, "text": strings.TrimSuffix(p, "\r")}
	}
	return lines
}

func fromDiff(diff string) ([]any, error) {
	parsed, _, err := gitdiff.Parse(strings.NewReader(diff))
	if err != nil {
		return nil, bad("diff: %v", err)
	}
	if len(parsed) == 0 {
		return nil, bad("diff: no file changes found (want a unified diff with ---/+++ headers and @@ hunks)")
	}
	gitStyle := strings.Contains("\n"+diff, "\ndiff --git ")
	var files []any
	for _, f := range parsed {
		if f.IsDelete || f.IsBinary {
			continue
		}
		name := f.NewName
		if name == "" {
			name = f.OldName
		}
		if !gitStyle {
			name = plainDiffName(f, name)
		}
		var lines []any
		size, next := 0, int64(0)
		for _, frag := range f.TextFragments {
			if frag.NewPosition < next {
				return nil, bad("diff: %s: hunk %q overlaps the one before it or is out of order", name, strings.TrimSpace(frag.Header()))
			}
			next = frag.NewPosition + frag.NewLines
			if frag.NewPosition == 0 && frag.NewLines > 0 {
				return nil, bad("diff: %s: hunk %q starts at line 0 of the new file but has lines in it", name, strings.TrimSpace(frag.Header()))
			}
			n := int(frag.NewPosition)
			for _, l := range frag.Lines {
				switch l.Op {
				case gitdiff.OpAdd:
					text := strings.TrimSuffix(strings.TrimSuffix(l.Line, "\n"), "\r")
					lines = append(lines, map[string]any{"line": n, "text": text})
					size += len(l.Line)
					n++
				case gitdiff.OpContext:
					n++
				}
			}
		}
		file := map[string]any{"path": name, "whole": f.IsNew, "lines": lines}
		if f.IsNew {
			file["size"] = size
		}
		if lines == nil {
			file["lines"] = []any{}
		}
		files = append(files, file)
	}
	return files, nil
}

// plainDiffName strips the a/ and b/ prefixes of a plain unified diff
// (diff -u, a patch from a tool); git's own headers are stripped by the
// parser already.
func plainDiffName(f *gitdiff.File, name string) string {
	oldOK := f.OldName == "" || f.OldName == name || strings.HasPrefix(f.OldName, "a/")
	if strings.HasPrefix(name, "b/") && oldOK {
		return strings.TrimPrefix(name, "b/")
	}
	return name
}

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// maxMixLine bounds a single JSONL line so a corrupt file cannot make the
// reader buffer without limit.
const maxMixLine = 16 << 20

// loadMix reads a request mix from a JSONL file.
func loadMix(path string) ([]*authv3.CheckRequest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readMix(f, path)
}

// readMix parses a request mix: one CheckRequest per line in protojson.
// Blank lines and lines whose first non-space character is '#' are ignored.
// Errors name the input (name) and the 1-based line number.
func readMix(r io.Reader, name string) ([]*authv3.CheckRequest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxMixLine)
	var reqs []*authv3.CheckRequest
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		req := new(authv3.CheckRequest)
		if err := protojson.Unmarshal(text, req); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		reqs = append(reqs, req)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line longer than %d bytes", name, line+1, maxMixLine)
		}
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s: no requests", name)
	}
	return reqs, nil
}

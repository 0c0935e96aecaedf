package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// spool appends a payload gavel did not receive to the spool file, one
// JSON document per line, unless that would take the file past its cap.
func (h *hook) spool(body []byte) {
	if body == nil {
		return
	}
	if h.cfg.spoolDir == "" {
		fmt.Fprintln(h.stderr, "gavel-hook: no spool directory (set GAVEL_SPOOL_DIR); payload not kept")
		return
	}
	line := body
	if bytes.ContainsAny(line, "\r\n") {
		var buf bytes.Buffer
		if err := json.Compact(&buf, line); err != nil {
			fmt.Fprintln(h.stderr, "gavel-hook: payload not spooled:", err)
			return
		}
		line = buf.Bytes()
	}
	line = append(bytes.TrimSpace(line), '\n')
	path := filepath.Join(h.cfg.spoolDir, spoolName)
	if err := appendSpool(path, line, h.cfg.spoolMax); err != nil {
		fmt.Fprintln(h.stderr, "gavel-hook: payload not spooled:", err)
		return
	}
	fmt.Fprintln(h.stderr, "gavel-hook: payload spooled to", path)
}

// appendSpool appends lines to the spool file at path. With max > 0 it
// refuses to grow the file past max bytes.
func appendSpool(path string, lines []byte, max int64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if max > 0 {
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.Size()+int64(len(lines)) > max {
			return fmt.Errorf("the spool %s is full (%d of %d bytes); payload dropped", path, st.Size(), max)
		}
	}
	if _, err := f.Write(lines); err != nil {
		return err
	}
	return f.Close()
}

// claimPrefix names spool files an uploader has taken:
// spool.jsonl.claim-<unix nanos>-<pid>.
const claimPrefix = spoolName + ".claim-"

// claimSpool takes the spool, or a claimed spool whose uploader is gone,
// by renaming it to a name of this process's own. Only one process wins a
// rename, so no payload is uploaded twice by concurrent hooks.
func claimSpool(dir string, now time.Time) []string {
	var claimed []string
	claim := func(from string) {
		to := filepath.Join(dir, claimPrefix+strconv.FormatInt(now.UnixNano(), 10)+"-"+strconv.Itoa(os.Getpid())+"-"+strconv.Itoa(len(claimed)))
		if os.Rename(from, to) == nil {
			claimed = append(claimed, to)
		}
	}
	stale, _ := filepath.Glob(filepath.Join(dir, claimPrefix+"*"))
	for _, p := range stale {
		ts, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(p), claimPrefix), "-")
		n, err := strconv.ParseInt(ts, 10, 64)
		if err == nil && now.Sub(time.Unix(0, n)) > staleClaim {
			claim(p)
		}
	}
	claim(filepath.Join(dir, spoolName))
	return claimed
}

// uploadSpool sends the spooled payloads to gavel after a successful call,
// within what is left of the deadline. Answers are ignored; accepted
// payloads leave the spool, the others are put back.
func (h *hook) uploadSpool() {
	dir := h.cfg.spoolDir
	if dir == "" {
		return
	}
	claims := claimSpool(dir, time.Now())
	if len(claims) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), h.deadline)
	defer cancel()
	path := filepath.Join(dir, spoolName)
	for _, claimed := range claims {
		data, err := os.ReadFile(claimed)
		if err != nil {
			fmt.Fprintln(h.stderr, "gavel-hook: read the spool:", err)
			continue
		}
		var keep bytes.Buffer
		sent, dropped := 0, 0
		down := false
		for _, line := range bytes.SplitAfter(data, []byte("\n")) {
			payload := bytes.TrimSpace(line)
			if len(payload) == 0 {
				continue
			}
			if down || ctx.Err() != nil {
				keep.Write(payload)
				keep.WriteByte('\n')
				continue
			}
			status, _, err := h.post(ctx, payload, true)
			switch {
			case err != nil:
				down = true
				keep.Write(payload)
				keep.WriteByte('\n')
			case status >= 200 && status <= 299:
				sent++
			case status == 400 || status == 413 || status == 422:
				// gavel rejects the payload itself; sending it again
				// cannot help.
				dropped++
			default:
				keep.Write(payload)
				keep.WriteByte('\n')
			}
		}
		if keep.Len() > 0 {
			// Put back without the cap: these were in the spool already.
			if err := appendSpool(path, keep.Bytes(), 0); err != nil {
				fmt.Fprintln(h.stderr, "gavel-hook: put unsent payloads back in the spool:", err)
				continue // keep the claimed file; a later hook takes it over
			}
		}
		os.Remove(claimed)
		if dropped > 0 {
			fmt.Fprintf(h.stderr, "gavel-hook: gavel rejected %d spooled payloads; dropped them\n", dropped)
		}
		if keep.Len() > 0 {
			fmt.Fprintf(h.stderr, "gavel-hook: uploaded %d spooled payloads, %d left for later\n", sent, bytes.Count(keep.Bytes(), []byte("\n")))
		}
	}
}

// Package discovery reads and writes gavel's discovery file: the addresses a
// running gavel bound, so that gavel-hook, the policy CLI and the Envoy
// bootstrap find it with nothing configured by hand.
//
// The file lives at $XDG_RUNTIME_DIR/gavel/ports.json when XDG_RUNTIME_DIR
// is set, else at <data dir>/ports.json. It is written atomically (a
// temporary file renamed over the old one) with mode 0600.
package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FileName is the discovery file's base name.
const FileName = "ports.json"

// Info is what a running gavel publishes.
type Info struct {
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	// AuthzAddr is the ext_authz gRPC address ("" when not served).
	AuthzAddr string `json:"authz_addr,omitempty"`
	// HTTPAddr is the HTTP API address ("" when not served).
	HTTPAddr string `json:"http_addr,omitempty"`
	// XDSAddr is the xDS control plane address ("" when not served).
	XDSAddr string `json:"xds_addr,omitempty"`
	// DataDir is where this gavel keeps its data.
	DataDir string `json:"data_dir,omitempty"`
	// HookToken is the bearer token the hooks endpoint and the MCP server
	// accept from local agents (gavel-hook reads it from here). The file's
	// mode 0600 keeps it to the user who runs gavel.
	HookToken string `json:"hook_token,omitempty"`
	// ViewerToken is the bearer token the event stream (GET /v1/events)
	// accepts: role viewer. Mode 0600 keeps it to the same user.
	ViewerToken string `json:"viewer_token,omitempty"`
}

// Path is where the discovery file goes for a data directory.
func Path(dataDir string) string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "gavel", FileName)
	}
	return filepath.Join(dataDir, FileName)
}

// Write publishes info at path atomically.
func Write(path string, info Info) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write discovery file: %w", err)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("write discovery file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ports-*.json")
	if err != nil {
		return fmt.Errorf("write discovery file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write discovery file: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write discovery file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write discovery file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write discovery file: %w", err)
	}
	return nil
}

// Read loads the discovery file at path.
func Read(path string) (Info, error) {
	var info Info
	b, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("read discovery file: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("read discovery file %s: %w", path, err)
	}
	return info, nil
}

// Remove deletes the discovery file if it still names pid, so a newer
// gavel's file is left alone.
func Remove(path string, pid int) error {
	info, err := Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil || info.PID != pid {
		return nil
	}
	return os.Remove(path)
}

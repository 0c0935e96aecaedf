package discovery

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteReadRemove(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	dir := t.TempDir()
	path := Path(dir)
	if path != filepath.Join(dir, FileName) {
		t.Fatalf("Path = %s", path)
	}
	want := Info{PID: os.Getpid(), Version: "test", StartedAt: time.Unix(1700000000, 0).UTC(), AuthzAddr: "127.0.0.1:9191", HTTPAddr: "127.0.0.1:8181"}
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Read = %+v, want %+v", got, want)
	}
	// Another process's file is left alone.
	if err := Remove(path, want.PID+1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("file removed for another pid: %v", err)
	}
	if err := Remove(path, want.PID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
}

func TestPathUsesRuntimeDir(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got := Path("/var/lib/gavel"); got != "/run/user/1000/gavel/ports.json" {
		t.Fatalf("Path = %s", got)
	}
}

func TestReadBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil {
		t.Fatal("Read of a corrupt file succeeded")
	}
}

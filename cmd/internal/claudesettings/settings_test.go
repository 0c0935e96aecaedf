package claudesettings

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testHooks is what the golden files were made with.
func testHooks() []Hook {
	return GavelHooks("/usr/local/bin/gavel-hook", []string{"--discovery", "/run/user/1000/gavel/ports.json"}, 5)
}

// golden compares got with the file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// cases lists the golden inputs of a directory.
func cases(t *testing.T, dir string) []string {
	t.Helper()
	ins, err := filepath.Glob(filepath.Join("testdata", dir, "*.in.json"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs in testdata/%s: %v", dir, err)
	}
	return ins
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// semantic decodes JSON for a comparison that ignores layout and key order.
func semantic(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in\n%s", err, b)
	}
	return v
}

func TestSettingsInstallGolden(t *testing.T) {
	for _, in := range cases(t, "install") {
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(name, func(t *testing.T) {
			out, changed, err := Install(read(t, in), testHooks())
			if err != nil {
				t.Fatal(err)
			}
			if !changed {
				t.Error("Install reports no change")
			}
			golden(t, strings.TrimSuffix(in, ".in.json")+".out.json", out)

			// Installing again changes nothing.
			again, changed, err := Install(out, testHooks())
			if err != nil {
				t.Fatal(err)
			}
			if changed || string(again) != string(out) {
				t.Fatalf("a second Install changed the file:\n%s", again)
			}
			events, err := Installed(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != len(testHooks()) {
				t.Fatalf("Installed = %v, want the %d events", events, len(testHooks()))
			}
		})
	}
}

func TestSettingsUninstallGolden(t *testing.T) {
	for _, in := range cases(t, "uninstall") {
		name := strings.TrimSuffix(filepath.Base(in), ".in.json")
		t.Run(name, func(t *testing.T) {
			src := read(t, in)
			out, changed, err := Uninstall(src)
			if err != nil {
				t.Fatal(err)
			}
			hadGavel, _ := Installed(src)
			if changed != (len(hadGavel) > 0) {
				t.Errorf("changed = %v, but the input has gavel hooks on %v", changed, hadGavel)
			}
			golden(t, strings.TrimSuffix(in, ".in.json")+".out.json", out)
			if events, _ := Installed(out); len(events) != 0 {
				t.Fatalf("gavel hooks left on %v", events)
			}
			again, changed, err := Uninstall(out)
			if err != nil {
				t.Fatal(err)
			}
			if changed || string(again) != string(out) {
				t.Fatalf("a second Uninstall changed the file:\n%s", again)
			}
		})
	}
}

// Uninstalling what Install added gives back the original settings.
func TestSettingsUninstallRestoresTheOriginal(t *testing.T) {
	for _, in := range []string{"testdata/install/others.in.json", "testdata/install/empty.in.json"} {
		t.Run(filepath.Base(in), func(t *testing.T) {
			src := read(t, in)
			installed, _, err := Install(src, testHooks())
			if err != nil {
				t.Fatal(err)
			}
			restored, changed, err := Uninstall(installed)
			if err != nil {
				t.Fatal(err)
			}
			if !changed {
				t.Fatal("Uninstall reports no change")
			}
			if len(strings.TrimSpace(string(src))) == 0 {
				src = []byte("{}")
			}
			if got, want := semantic(t, restored), semantic(t, src); !reflect.DeepEqual(got, want) {
				t.Fatalf("after install and uninstall:\n%s\nwant the equivalent of\n%s", restored, src)
			}
			// And the original layout up to indentation: keys in place.
			orig, _ := parseDoc(src)
			if string(restored) != string(orig.encode()) {
				t.Fatalf("key order or scalars changed:\n%s\nwant\n%s", restored, orig.encode())
			}
		})
	}
}

func TestSettingsKeepOtherHooksOfTheSameEvent(t *testing.T) {
	out, _, err := Install(read(t, "testdata/install/old-gavel.in.json"), testHooks())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Hooks map[string][]struct {
			Matcher string           `json:"matcher"`
			Hooks   []map[string]any `json:"hooks"`
		} `json:"hooks"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	count := func(event string) (gavel, others int) {
		for _, g := range doc.Hooks[event] {
			for _, h := range g.Hooks {
				if c, _ := h["command"].(string); IsGavelCommand(c) {
					gavel++
					if c != "/usr/local/bin/gavel-hook" || h["timeout"] != 5.0 {
						t.Errorf("%s: stale gavel handler %v", event, h)
					}
				} else {
					others++
				}
			}
		}
		return
	}
	for event, wantOthers := range map[string]int{"PreToolUse": 1, "PermissionRequest": 1, "UserPromptSubmit": 0, "PostToolUse": 1} {
		g, o := count(event)
		if g != 1 || o != wantOthers {
			t.Errorf("%s: %d gavel handlers and %d others, want 1 and %d", event, g, o, wantOthers)
		}
	}
	if _, ok := doc.Hooks["Notification"]; ok {
		t.Error("the old gavel Notification hook is still there")
	}
	// The gavel handler shared a group with audit.sh: it is replaced there.
	if pre := doc.Hooks["PreToolUse"]; len(pre) != 1 || len(pre[0].Hooks) != 2 {
		t.Errorf("PreToolUse groups %+v: want gavel replaced in place beside audit.sh", pre)
	}
	// The old PermissionRequest handler matched only Bash: gavel's group
	// now takes the place of that group and matches everything.
	if pr := doc.Hooks["PermissionRequest"]; len(pr) != 2 || pr[0].Matcher != "*" || pr[1].Matcher != "Write" {
		t.Errorf("PermissionRequest groups %+v", pr)
	}
}

func TestSettingsInvalidJSONIsRefused(t *testing.T) {
	tests := []struct {
		name, in, want string
		line, col      int
	}{
		{"trailing comma", "{\n  \"model\": \"opus\",\n}\n", "line 3, column 1", 3, 1},
		{"comment", "{\n  // mine\n  \"model\": \"opus\"\n}\n", "line 2", 2, 3},
		{"truncated", `{"hooks": {"PreToolUse": [`, "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []func([]byte) ([]byte, bool, error){
				func(b []byte) ([]byte, bool, error) { return Install(b, testHooks()) },
				Uninstall,
			} {
				out, _, err := f([]byte(tc.in))
				if err == nil || out != nil {
					t.Fatalf("err = %v, out = %q; want an error and no output", err, out)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %v, want it to say %q", err, tc.want)
				}
				var se *SyntaxError
				if tc.line > 0 && (!errors.As(err, &se) || se.Line != tc.line || se.Col != tc.col) {
					t.Errorf("err = %#v, want line %d column %d", err, tc.line, tc.col)
				}
			}
		})
	}
	for _, in := range []string{`[1, 2]`, `"settings"`, `{"hooks": []}`, `{"hooks": {"PreToolUse": {}}}`} {
		if _, _, err := Install([]byte(in), testHooks()); err == nil {
			t.Errorf("Install(%s) succeeded", in)
		}
	}
}

func TestSettingsManagedGolden(t *testing.T) {
	got := Managed(ManagedOptions{URL: "http://127.0.0.1:8181/", HookCommand: "/usr/local/bin/gavel-hook", Timeout: 5,
		ForwarderFlags: []string{"--url", "http://127.0.0.1:8181"}})
	golden(t, "testdata/managed.json", got)
	var doc struct {
		AllowManagedHooksOnly  bool     `json:"allowManagedHooksOnly"`
		AllowedHTTPHookURLs    []string `json:"allowedHttpHookUrls"`
		HTTPHookAllowedEnvVars []string `json:"httpHookAllowedEnvVars"`
		Hooks                  map[string][]struct {
			Hooks []struct {
				Type, URL string
			} `json:"hooks"`
		} `json:"hooks"`
	}
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatal(err)
	}
	if !doc.AllowManagedHooksOnly || len(doc.AllowedHTTPHookURLs) != 1 || doc.AllowedHTTPHookURLs[0] != "http://127.0.0.1:8181/*" {
		t.Errorf("org controls: %+v", doc)
	}
	for _, ev := range GatingEvents {
		if h := doc.Hooks[ev]; len(h) != 1 || h[0].Hooks[0].Type != "command" {
			t.Errorf("%s: %+v, want the command forwarder (it fails closed)", ev, h)
		}
	}
	for _, ev := range []string{"PostToolUse", "SessionEnd"} {
		if h := doc.Hooks[ev]; len(h) != 1 || h[0].Hooks[0].Type != "http" || h[0].Hooks[0].URL != "http://127.0.0.1:8181/v1/hooks/claude-code" {
			t.Errorf("%s: %+v, want an http hook to gavel", ev, h)
		}
	}
	if again := Managed(ManagedOptions{URL: "http://127.0.0.1:8181/", HookCommand: "/usr/local/bin/gavel-hook", Timeout: 5,
		ForwarderFlags: []string{"--url", "http://127.0.0.1:8181"}}); string(again) != string(got) {
		t.Fatal("Managed is not deterministic")
	}
}

func TestSettingsIsGavelCommand(t *testing.T) {
	for cmd, want := range map[string]bool{
		"/usr/local/bin/gavel-hook":                  true,
		"gavel-hook":                                 true,
		"gavel-hook PreToolUse":                      true,
		`"/Users/me/my tools/gavel-hook" PreToolUse`: true,
		`C:\gavel\gavel-hook.exe`:                    true,
		"'/opt/gavel-hook' PreToolUse":               true,
		"/usr/local/bin/gavel":                       false,
		"/usr/local/bin/gavel-hook-wrapper.sh":       false,
		"echo gavel-hook":                            false,
		"":                                           false,
	} {
		if got := IsGavelCommand(cmd); got != want {
			t.Errorf("IsGavelCommand(%q) = %v, want %v", cmd, got, want)
		}
	}
}

func TestSettingsForwarderTimeout(t *testing.T) {
	for in, want := range map[int]string{2: "1s", 3: "", 5: "", 600: ""} {
		got, err := ForwarderTimeout(in)
		if err != nil || got != want {
			t.Errorf("ForwarderTimeout(%d) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ForwarderTimeout(1); err == nil {
		t.Error("ForwarderTimeout(1) succeeded")
	}
}

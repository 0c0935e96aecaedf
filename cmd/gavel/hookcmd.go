package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/gavel-dev/gavel/cmd/internal/claudesettings"
	"github.com/gavel-dev/gavel/cmd/internal/discovery"
)

// defaultManagedURL is gavel's URL in the managed settings when --url is
// not given.
const defaultManagedURL = "http://127.0.0.1:8181"

// defaultManagedHookBinary is where organisations install gavel-hook.
const defaultManagedHookBinary = "/usr/local/bin/gavel-hook"

type hookOpts struct {
	scope      string
	projectDir string
	hookBinary string
	discovery  string
	url        string
	timeout    int
	managed    bool
	dataDir    string
}

func newHookCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Install or remove gavel's Claude Code hooks",
		Long: `Write gavel's hooks into a Claude Code settings file, or take them out again.

gavel's hooks run gavel-hook, the command forwarder: it sends each hook
event to gavel and fails closed for the gating events when gavel cannot be
asked. Only gavel's own entries (command hooks running gavel-hook) are
touched; every other setting and hook is kept.`,
	}
	var o hookOpts
	scopeFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&o.scope, "scope", "project", "which settings file: project (.claude/settings.json), local (.claude/settings.local.json) or user (~/.claude/settings.json)")
		c.Flags().StringVar(&o.projectDir, "project-dir", "", "the project for the project and local scopes (default: the current directory)")
	}
	install := &cobra.Command{
		Use:   "install",
		Short: "Add gavel's hooks to a Claude Code settings file (or print managed settings with --managed)",
		Long: `Add gavel's hooks to a Claude Code settings file: the gating events
(PreToolUse, PermissionRequest, UserPromptSubmit, ConfigChange, PreCompact)
and the observation events (PostToolUse, Stop, SessionStart, SessionEnd), each
running gavel-hook with the event's name. gavel entries already there are
replaced in place, so running it again changes nothing. An existing file is
backed up (settings.json.bak, or a timestamped .bak when that exists) and
replaced atomically; a file that is not valid JSON is left alone.

With --managed, print a managed-settings.json for an organisation instead
(/etc/claude-code/managed-settings.json on Linux): only managed hooks run, the
gating events go through gavel-hook (fail closed) and PostToolUse/SessionEnd
are HTTP hooks to --url carrying the token in GAVEL_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.managed {
				return printManaged(cmd, o)
			}
			return installHooks(cmd, o)
		},
	}
	scopeFlags(install)
	install.Flags().StringVar(&o.hookBinary, "hook-binary", "", "gavel-hook's path (default: gavel-hook beside this gavel, else on PATH; with --managed "+defaultManagedHookBinary+")")
	install.Flags().StringVar(&o.discovery, "discovery", "", "the discovery file gavel-hook reads gavel's address and token from (default: the one of --data-dir, as an absolute path)")
	install.Flags().StringVar(&o.dataDir, "data-dir", "./gavel-data", "the data dir of the gavel the hooks ask, for the default --discovery")
	install.Flags().StringVar(&o.url, "url", "", "gavel's URL for gavel-hook (default: from the discovery file; with --managed "+defaultManagedURL+")")
	install.Flags().IntVar(&o.timeout, "timeout", 5, "the hook timeout in seconds; gavel-hook decides within min(2s, timeout-1s)")
	install.Flags().BoolVar(&o.managed, "managed", false, "print managed settings for an organisation to stdout instead of editing a settings file")

	uninstall := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove gavel's hooks from a Claude Code settings file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return uninstallHooks(cmd, o)
		},
	}
	scopeFlags(uninstall)
	cmd.AddCommand(install, uninstall)
	return cmd
}

// settingsPath is the settings file of a scope.
func settingsPath(scope, projectDir string) (string, error) {
	if scope == "user" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("--scope user: %w", err)
		}
		return filepath.Join(home, ".claude", "settings.json"), nil
	}
	if projectDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		projectDir = wd
	}
	projectDir, err := filepath.Abs(projectDir)
	if err != nil {
		return "", err
	}
	switch scope {
	case "project":
		return filepath.Join(projectDir, ".claude", "settings.json"), nil
	case "local":
		return filepath.Join(projectDir, ".claude", "settings.local.json"), nil
	}
	return "", fmt.Errorf("--scope %q: want project, local or user", scope)
}

// findHookBinary is gavel-hook's absolute path: the one given, else the
// one beside the running gavel, else the one on PATH.
func findHookBinary(explicit string) (string, error) {
	if explicit != "" {
		p, err := filepath.Abs(explicit)
		if err != nil {
			return "", err
		}
		st, err := os.Stat(p)
		switch {
		case err != nil:
			return "", fmt.Errorf("--hook-binary: %w", err)
		case st.IsDir() || st.Mode().Perm()&0o111 == 0:
			return "", fmt.Errorf("--hook-binary %s is not an executable file", p)
		}
		return p, nil
	}
	var beside string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		beside = filepath.Join(filepath.Dir(exe), "gavel-hook")
		if st, err := os.Stat(beside); err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0 {
			return beside, nil
		}
	}
	if p, err := exec.LookPath("gavel-hook"); err == nil {
		return filepath.Abs(p)
	}
	return "", fmt.Errorf("gavel-hook not found (not at %s, not on PATH): build it with `go build ./cmd/gavel-hook` or pass --hook-binary PATH", beside)
}

// forwarderFlags are the flags the hooks pass to gavel-hook.
func forwarderFlags(o hookOpts) ([]string, error) {
	var flags []string
	if o.discovery != "" {
		p, err := filepath.Abs(o.discovery)
		if err != nil {
			return nil, err
		}
		flags = append(flags, "--discovery", p)
	}
	if o.url != "" {
		flags = append(flags, "--url", o.url)
	}
	t, err := claudesettings.ForwarderTimeout(o.timeout)
	if err != nil {
		return nil, fmt.Errorf("--timeout: %w", err)
	}
	if t != "" {
		flags = append(flags, "--timeout", t)
	}
	return flags, nil
}

func printManaged(cmd *cobra.Command, o hookOpts) error {
	if o.url == "" {
		o.url = defaultManagedURL
	}
	bin := o.hookBinary
	if bin == "" {
		bin = defaultManagedHookBinary
	}
	if !filepath.IsAbs(bin) {
		return fmt.Errorf("--hook-binary %s: want gavel-hook's absolute path on the managed machines", bin)
	}
	flags, err := forwarderFlags(hookOpts{url: o.url, timeout: o.timeout, discovery: o.discovery})
	if err != nil {
		return err
	}
	_, err = cmd.OutOrStdout().Write(claudesettings.Managed(claudesettings.ManagedOptions{
		URL: o.url, HookCommand: bin, Timeout: o.timeout, ForwarderFlags: flags,
	}))
	return err
}

// settingsFile is a settings file on disk: where it is (symlinks
// followed, so a linked file is edited where it lives), its content and
// mode.
type settingsFile struct {
	path    string // as named by the scope
	target  string // where the bytes are
	data    []byte
	mode    fs.FileMode
	existed bool
}

func readSettings(path string) (*settingsFile, error) {
	f := &settingsFile{path: path, target: path, mode: 0o644}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		f.target = real
	}
	st, err := os.Stat(f.target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, err
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f.data, err = os.ReadFile(f.target)
	if err != nil {
		return nil, err
	}
	f.mode, f.existed = st.Mode().Perm(), true
	return f, nil
}

// replace backs the old file up (when there was one) and writes data
// atomically with the file's mode. It returns the backup's path.
func (f *settingsFile) replace(data []byte) (string, error) {
	var backup string
	if f.existed {
		var err error
		if backup, err = writeBackup(f.target, f.data, f.mode); err != nil {
			return "", fmt.Errorf("back up %s: %w", f.path, err)
		}
	}
	if err := writeFileAtomic(f.target, data, f.mode); err != nil {
		return "", fmt.Errorf("write %s: %w", f.path, err)
	}
	return backup, nil
}

// writeBackup writes path.bak, or path.bak.<time> when path.bak exists,
// never overwriting an earlier backup.
func writeBackup(path string, data []byte, mode fs.FileMode) (string, error) {
	candidates := []string{path + ".bak"}
	stamp := path + ".bak." + time.Now().UTC().Format("20060102T150405Z")
	candidates = append(candidates, stamp)
	for i := 1; i < 100; i++ {
		candidates = append(candidates, stamp+"."+strconv.Itoa(i))
	}
	for _, c := range candidates {
		bf, err := os.OpenFile(c, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if _, err := bf.Write(data); err != nil {
			bf.Close()
			os.Remove(c)
			return "", err
		}
		if err := bf.Close(); err != nil {
			os.Remove(c)
			return "", err
		}
		return c, nil
	}
	return "", fmt.Errorf("too many backups of %s", path)
}

// writeFileAtomic writes a temporary file beside path and renames it over
// path, so readers see the old file or the new one, never half of one.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func installHooks(cmd *cobra.Command, o hookOpts) error {
	path, err := settingsPath(o.scope, o.projectDir)
	if err != nil {
		return err
	}
	bin, err := findHookBinary(o.hookBinary)
	if err != nil {
		return err
	}
	if o.discovery == "" && o.url == "" {
		// Claude Code runs hooks from the project directory, so a relative
		// lookup would miss a gavel started elsewhere: pin the file.
		o.discovery = discovery.Path(o.dataDir)
	}
	flags, err := forwarderFlags(o)
	if err != nil {
		return err
	}
	f, err := readSettings(path)
	if err != nil {
		return err
	}
	hooks := claudesettings.GavelHooks(bin, flags, o.timeout)
	out, changed, err := claudesettings.Install(f.data, hooks)
	if err != nil {
		return fmt.Errorf("%s: %w; the file was not changed", path, err)
	}
	w := cmd.OutOrStdout()
	if !changed {
		fmt.Fprintf(w, "gavel hooks already installed in %s\n", path)
		return nil
	}
	backup, err := f.replace(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "installed gavel hooks for %d events in %s, running %s\n", len(hooks), path, bin)
	if backup != "" {
		fmt.Fprintf(w, "the previous file is in %s\n", backup)
	}
	return nil
}

func uninstallHooks(cmd *cobra.Command, o hookOpts) error {
	path, err := settingsPath(o.scope, o.projectDir)
	if err != nil {
		return err
	}
	f, err := readSettings(path)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if !f.existed {
		fmt.Fprintf(w, "no gavel hooks in %s (no such file)\n", path)
		return nil
	}
	out, changed, err := claudesettings.Uninstall(f.data)
	if err != nil {
		return fmt.Errorf("%s: %w; the file was not changed", path, err)
	}
	if !changed {
		fmt.Fprintf(w, "no gavel hooks in %s\n", path)
		return nil
	}
	backup, err := f.replace(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "removed gavel hooks from %s\n", path)
	if backup != "" {
		fmt.Fprintf(w, "the previous file is in %s\n", backup)
	}
	return nil
}

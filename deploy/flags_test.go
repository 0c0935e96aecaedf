package deploy_test

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// listenFlags are gavel's listen address flags.
var listenFlags = []string{"http-addr", "authz-addr", "xds-addr"}

// parseFlags reads --name=value and --name value pairs from a gavel command
// line (after the subcommand). Boolean flags are not used in these files.
func parseFlags(t *testing.T, args []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for i := 0; i < len(args); i++ {
		a, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			t.Fatalf("argument %q: want --flag", args[i])
		}
		if name, value, ok := strings.Cut(a, "="); ok {
			m[name] = value
			continue
		}
		if i+1 == len(args) {
			t.Fatalf("flag --%s has no value", a)
		}
		m[a] = args[i+1]
		i++
	}
	return m
}

// splitHostPort splits a listen address; the port must be a number.
func splitHostPort(t *testing.T, addr string) (string, int32) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		t.Fatalf("address %q: bad port", addr)
	}
	return host, int32(p)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

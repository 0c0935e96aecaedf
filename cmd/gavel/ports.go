package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gavel-dev/gavel/cmd/internal/discovery"
)

// portsClient talks to the port discovery REST API of a running gavel.
type portsClient struct {
	base string // http://host:port
	hc   *http.Client
	// token is sent as a bearer token: $GAVEL_TOKEN, or --token.
	token string
}

func newPortsCmd() *cobra.Command {
	var server, dataDir string
	cmd := &cobra.Command{
		Use:   "ports",
		Short: "Register, renew, list and release service ports (port discovery)",
		Long: `Talk to the port discovery API of a running gavel: at --server, or else at the
HTTP address in the discovery file of --data-dir.`,
	}
	cmd.PersistentFlags().StringVar(&server, "server", "", "gavel's HTTP API URL, as in http://127.0.0.1:8181 (default: from the discovery file)")
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "./gavel-data", "the data dir of the gavel to find through its discovery file")
	client := func() (*portsClient, error) { return newPortsClient(server, dataDir) }

	var reg struct {
		port    int
		address string
		ttl     time.Duration
		labels  []string
	}
	register := &cobra.Command{
		Use:   "register SERVICE",
		Short: "Register an instance of SERVICE (allocating a port unless --port is given) and print its lease",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(reg.labels)
			if err != nil {
				return err
			}
			c, err := client()
			if err != nil {
				return err
			}
			body := map[string]any{"port": reg.port}
			if reg.address != "" {
				body["address"] = reg.address
			}
			if len(labels) > 0 {
				body["labels"] = labels
			}
			if reg.ttl != 0 {
				body["ttl"] = reg.ttl.String()
			}
			var inst json.RawMessage
			if err := c.do(cmd.Context(), "POST", "/v1/services/"+url.PathEscape(args[0])+"/instances", body, &inst); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), inst)
		},
	}
	register.Flags().IntVar(&reg.port, "port", 0, "the port the instance listens on (0: allocate a free one)")
	register.Flags().StringVar(&reg.address, "address", "", "the instance's IP address (default 127.0.0.1)")
	register.Flags().DurationVar(&reg.ttl, "ttl", 0, "lease TTL (default: the server's --lease-ttl)")
	register.Flags().StringArrayVar(&reg.labels, "label", nil, "label key=value (repeatable)")

	var renewTTL time.Duration
	renew := &cobra.Command{
		Use:   "renew SERVICE ID",
		Short: "Extend a lease and print it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			body := map[string]any{}
			if renewTTL != 0 {
				body["ttl"] = renewTTL.String()
			}
			var inst json.RawMessage
			if err := c.do(cmd.Context(), "PUT", instancePath(args[0], args[1]), body, &inst); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), inst)
		},
	}
	renew.Flags().DurationVar(&renewTTL, "ttl", 0, "new lease TTL (default: the lease's own)")

	release := &cobra.Command{
		Use:   "release SERVICE ID",
		Short: "Release a lease, freeing its port",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			return c.do(cmd.Context(), "DELETE", instancePath(args[0], args[1]), nil, nil)
		},
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the live instances of every service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			var resp struct {
				Services []struct {
					Name      string `json:"name"`
					Instances []struct {
						ID        string            `json:"id"`
						Address   string            `json:"address"`
						Port      int               `json:"port"`
						Labels    map[string]string `json:"labels"`
						ExpiresAt time.Time         `json:"expires_at"`
					} `json:"instances"`
				} `json:"services"`
			}
			if err := c.do(cmd.Context(), "GET", "/v1/services", nil, &resp); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tID\tADDRESS\tPORT\tEXPIRES IN\tLABELS")
			now := time.Now()
			for _, s := range resp.Services {
				for _, in := range s.Instances {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, in.ID, in.Address, in.Port,
						in.ExpiresAt.Sub(now).Round(time.Second), formatLabels(in.Labels))
				}
			}
			return tw.Flush()
		},
	}

	cmd.AddCommand(register, renew, list, release)
	return cmd
}

func instancePath(service, id string) string {
	return "/v1/services/" + url.PathEscape(service) + "/instances/" + url.PathEscape(id)
}

// newPortsClient finds gavel's HTTP API: server when given, else the
// discovery file of dataDir.
func newPortsClient(server, dataDir string) (*portsClient, error) {
	if server == "" {
		path := discovery.Path(dataDir)
		info, err := discovery.Read(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("no running gavel found (no discovery file at %s): start `gavel serve` or pass --server URL", path)
		case err != nil:
			return nil, err
		case info.HTTPAddr == "":
			return nil, fmt.Errorf("the gavel in %s serves no HTTP API: pass --server URL", path)
		}
		server = info.HTTPAddr
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &portsClient{base: strings.TrimRight(server, "/"), hc: &http.Client{Timeout: 10 * time.Second},
		token: os.Getenv("GAVEL_TOKEN")}, nil
}

// do sends body as JSON and decodes a successful answer into out; an error
// answer becomes an error with the server's message.
func (c *portsClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach gavel at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read gavel's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("gavel's answer is not JSON: %w", err)
	}
	return nil
}

func parseLabels(kvs []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want key=value", kv)
		}
		labels[k] = v
	}
	return labels, nil
}

func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	kvs := make([]string, 0, len(labels))
	for k, v := range labels {
		kvs = append(kvs, k+"="+v)
	}
	sort.Strings(kvs)
	return strings.Join(kvs, ",")
}

func printJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gavel-dev/gavel/api/bundles"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// remoteFlags are how the policy lifecycle commands reach a running gavel:
// --server (else the discovery file of --data-dir) and --token (else
// $GAVEL_TOKEN), an API key with the policy-admin role (viewer to list and
// diff).
type remoteFlags struct {
	server, dataDir, token string
}

func (f *remoteFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "", "gavel's HTTP address (default: from the discovery file of --data-dir)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "./gavel-data", "the data dir of the gavel to find through its discovery file")
	cmd.Flags().StringVar(&f.token, "token", "", "API key or JWT with the policy-admin role (default $GAVEL_TOKEN)")
}

func (f *remoteFlags) client() (*portsClient, error) {
	c, err := newPortsClient(f.server, f.dataDir)
	if err != nil {
		return nil, err
	}
	if f.token != "" {
		c.token = f.token
	}
	c.hc.Timeout = 2 * time.Minute // a large bundle's tests take a while
	return c, nil
}

// raw sends body with contentType and returns the answer's body; an error
// answer becomes an error carrying the server's message and, for a
// rejected bundle, its problems.
func (c *portsClient) raw(cmd *cobra.Command, method, path, contentType string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(cmd.Context(), method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("reach gavel at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error    string            `json:"error"`
			Problems []bundles.Problem `json:"problems"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			if len(e.Problems) > 0 {
				var msg strings.Builder
				msg.WriteString("bundle rejected:")
				for _, p := range e.Problems {
					msg.WriteString("\n  " + p.String())
				}
				return b, resp.StatusCode, errors.New(msg.String())
			}
			return b, resp.StatusCode, fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return b, resp.StatusCode, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return b, resp.StatusCode, nil
}

func newPolicyPushCmd() *cobra.Command {
	var rf remoteFlags
	var source string
	var activate bool
	cmd := &cobra.Command{
		Use:   "push BUNDLE",
		Short: "Upload a bundle (a directory or a .tar.gz) to a running gavel: checked, tested, stored",
		Long: `Upload a bundle to gavel's bundle API. gavel reads it, verifies its signature
when signatures are required, compiles it and runs its Rego tests before it
stores it; a rejected bundle is reported problem by problem, with file and
line, and nothing changes. --activate makes it the active revision on every
replica at once.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			b, err := policy.LoadBundle(args[0], policy.Limits{})
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := b.WriteTarGz(&buf); err != nil {
				return err
			}
			if source == "" {
				source = args[0]
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "uploading %s: %d files, %s, revision %s\n", args[0], len(b.Files), size(buf.Len()), b.ShortRevision())
			body, _, err := c.raw(cmd, http.MethodPost, "/v1/bundles?source="+url.QueryEscape(source), "application/gzip", buf.Bytes())
			if err != nil {
				return err
			}
			var res bundles.UploadResult
			if err := json.Unmarshal(body, &res); err != nil {
				return fmt.Errorf("gavel's answer is not JSON: %w", err)
			}
			state := "stored"
			if !res.Created {
				state = "already stored"
			}
			signed := ""
			if res.Signed {
				signed = ", signature verified"
			}
			fmt.Fprintf(out, "checked: compiles, %d tests pass%s; %s as %s\n", res.Tests, signed, state, res.Revision)
			if activate {
				return activateRevision(cmd, c, res.Revision)
			}
			fmt.Fprintf(out, "activate it with: gavel policy activate %s\n", res.Revision[:12])
			return nil
		},
	}
	rf.add(cmd)
	cmd.Flags().StringVar(&source, "source", "", "the name the bundle is listed under (default: the path given)")
	cmd.Flags().BoolVar(&activate, "activate", false, "activate it once stored")
	return cmd
}

func activateRevision(cmd *cobra.Command, c *portsClient, rev string) error {
	body, _, err := c.raw(cmd, http.MethodPost, "/v1/bundles/"+rev+"/activate", "", nil)
	if err != nil {
		return err
	}
	var a store.Activation
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("gavel's answer is not JSON: %w", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "active: %s (activation %d by %s at %s); every replica switches within a second\n",
		a.Revision, a.Seq, a.By, a.At.Format(time.RFC3339))
	return nil
}

func newPolicyActivateCmd() *cobra.Command {
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:   "activate REVISION",
		Short: "Make a stored bundle the active revision on every replica (a unique prefix of 6+ hex digits will do)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			return activateRevision(cmd, c, args[0])
		},
	}
	rf.add(cmd)
	return cmd
}

func newPolicyRollbackCmd() *cobra.Command {
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Activate the revision that was active before the current one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			body, _, err := c.raw(cmd, http.MethodPost, "/v1/bundles/rollback", "", nil)
			if err != nil {
				return err
			}
			var a store.Activation
			if err := json.Unmarshal(body, &a); err != nil {
				return fmt.Errorf("gavel's answer is not JSON: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rolled back: %s is active again (activation %d by %s)\n", a.Revision, a.Seq, a.By)
			return nil
		},
	}
	rf.add(cmd)
	return cmd
}

func newPolicyListCmd() *cobra.Command {
	var rf remoteFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the stored bundles, newest first, and which one is active",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			body, _, err := c.raw(cmd, http.MethodGet, "/v1/bundles", "", nil)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var l bundles.List
			if err := json.Unmarshal(body, &l); err != nil {
				return fmt.Errorf("gavel's answer is not JSON: %w", err)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "\tREVISION\tSOURCE\tSIZE\tTESTS\tSIGNED\tUPLOADED BY\tUPLOADED AT")
			for _, b := range l.Bundles {
				mark := ""
				if l.Active != nil && l.Active.Revision == b.Revision {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%v\t%s\t%s\n", mark, b.Revision[:12], b.Source, size(b.Size), b.Tests, b.Signed,
					b.UploadedBy, b.UploadedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	rf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print gavel's answer as JSON")
	return cmd
}

func newPolicyDiffCmd() *cobra.Command {
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:   "diff REVISION_A REVISION_B",
		Short: "Show what changed from one stored bundle to another, as a unified diff",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			body, _, err := c.raw(cmd, http.MethodGet, "/v1/bundles/"+args[0]+"/diff/"+args[1], "", nil)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(body)
			return err
		},
	}
	rf.add(cmd)
	return cmd
}

func size(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gavel-dev/gavel/api/auth"
	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// authConfig is how gavel serve authenticates HTTP API callers: API keys
// in the store, and JWTs when a key source is given.
type authConfig struct {
	jwtPublicKeys []string
	jwksURL       string
	jwtIssuer     string
	jwtAudience   string
	jwtRolesClaim string
	metricsAuth   bool
	keyCacheTTL   time.Duration
}

func (c *authConfig) flags(f *pflag.FlagSet) {
	f.StringArrayVar(&c.jwtPublicKeys, "jwt-public-key", nil, "PEM file of an RSA public key (or certificate) that verifies RS256 bearer JWTs (repeatable)")
	f.StringVar(&c.jwksURL, "jwks-url", "", "JWKS URL whose keys verify RS256 bearer JWTs (fetched at start, hourly, and when a token names an unknown kid)")
	f.StringVar(&c.jwtIssuer, "jwt-issuer", "", "iss a JWT must carry (any when empty)")
	f.StringVar(&c.jwtAudience, "jwt-audience", "", "aud a JWT must include (any when empty)")
	f.StringVar(&c.jwtRolesClaim, "jwt-roles-claim", "roles", "JWT claim with the caller's gavel roles (a string array; scope entries gavel:<role> count too)")
	f.BoolVar(&c.metricsAuth, "metrics-auth", false, "ask for role viewer on /metrics (by default Prometheus scrapes it without credentials)")
	f.DurationVar(&c.keyCacheTTL, "api-key-cache-ttl", 5*time.Second, "how long an API key looked up in the store is trusted before it is looked up again; a revoked key is refused within it (negative: look up every request)")
}

// newAPIAuth builds serve's API authenticator over the store's keys, with
// the generated local tokens (the agents' hook token, the viewer token)
// registered as keys local-agent and local-viewer. It returns nil without
// a store: the handlers then check the local tokens themselves.
func newAPIAuth(ctx context.Context, c authConfig, st store.Store, agents *agentAPI, stream *eventsAPI, trail policy.Sink, log *slog.Logger) (*auth.Authenticator, error) {
	if st == nil {
		return nil, nil
	}
	if agents != nil {
		ensureLocalKey(ctx, st, log, agents.token, agentPrincipal)
	}
	var audit policy.Sinks
	if trail != nil {
		audit = append(audit, trail)
	}
	if stream != nil {
		ensureLocalKey(ctx, st, log, stream.viewerToken, viewerPrincipal)
		audit = append(audit, stream.decisions)
	}
	pub, err := auth.ReadPublicKeys(c.jwtPublicKeys)
	if err != nil {
		return nil, err
	}
	return auth.New(ctx, auth.Options{
		Keys:        st,
		KeyCacheTTL: c.keyCacheTTL,
		JWT: auth.JWTOptions{
			PublicKeys: pub,
			JWKSURL:    c.jwksURL,
			Issuer:     c.jwtIssuer,
			Audience:   c.jwtAudience,
			RolesClaim: c.jwtRolesClaim,
		},
		Audit:  audit,
		Logger: log,
	})
}

// ensureLocalKey registers a generated token as an API key of p's name and
// roles, once; a key an operator revoked stays revoked. A store that does
// not answer is logged: the key is registered on a later start.
func ensureLocalKey(ctx context.Context, keys store.Keys, log *slog.Logger, token string, p auth.Principal) {
	k, err := auth.EnsureKey(ctx, keys, token, p.Name, p.Roles, time.Now())
	switch {
	case err != nil:
		log.Error("local token not registered as an API key: it is refused until it is", "name", p.Name, "err", err)
	case !k.RevokedAt.IsZero():
		log.Warn("local token's API key is revoked: delete the token file and restart to get a new one", "name", k.Name, "id", k.ID)
	}
}

func newKeysCmd() *cobra.Command {
	var dataDir string
	sc := &storeConfig{migrate: true}
	open := func(ctx context.Context) (store.Store, error) {
		opts := sc.options(dataDir, nil)
		if opts.PostgresURL == "" {
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, fmt.Errorf("--data-dir: %w", err)
			}
		}
		return store.Open(ctx, opts)
	}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke API keys (in the store, directly: works before any key exists)",
		Long: `Manage the API keys gavel's HTTP API accepts as "Authorization: Bearer <key>".
The commands talk to the store (PostgreSQL with --postgres-url, else
<data-dir>/gavel.db), not to a running gavel, so the first admin key can be
made on the host. A key is shown once, when it is created; the store keeps
only its sha256. Roles: admin (everything), policy-admin (bundles), agent
(hooks, MCP, validation), viewer (audit, events, reads).`,
	}
	pf := cmd.PersistentFlags()
	pf.String("config", "", "YAML file with flag values (keys are flag names)")
	pf.StringVar(&dataDir, "data-dir", "./gavel-data", "where gavel keeps its data (the SQLite database is gavel.db in it)")
	pf.StringVar(&sc.postgresURL, "postgres-url", "", "PostgreSQL URL; the SQLite file in --data-dir when empty")

	var name string
	var roles []string
	create := &cobra.Command{
		Use:     "create --name NAME --role ROLE [--role ROLE...]",
		Short:   "Create a key and print it (once: it is not shown again)",
		Args:    cobra.NoArgs,
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkKeyName(name); err != nil {
				return err
			}
			if err := checkRoles(roles); err != nil {
				return err
			}
			st, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			k, secret := auth.NewKey(name, roles, keyCreator(), time.Now())
			if err := st.CreateKey(cmd.Context(), k); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("a key named %q exists: pick another name (or revoke it; names stay taken)", name)
				}
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "created key %s (%s) with roles %s.\nThe key above is shown this once and cannot be shown again: store it now.\n",
				k.ID, k.Name, strings.Join(k.Roles, ","))
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "the key's name (who or what uses it)")
	create.Flags().StringSliceVar(&roles, "role", nil, "a role the key holds: admin, policy-admin, agent, viewer (repeatable)")

	list := &cobra.Command{
		Use:     "list",
		Short:   "List keys, revoked ones included",
		Args:    cobra.NoArgs,
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			keys, err := st.ListKeys(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tROLES\tCREATED\tLAST USED\tREVOKED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix+"…", strings.Join(k.Roles, ","),
					when(k.CreatedAt), when(k.LastUsed), when(k.RevokedAt))
			}
			return tw.Flush()
		},
	}

	revoke := &cobra.Command{
		Use:     "revoke ID|NAME",
		Short:   "Revoke a key: gavel refuses it from then on (within --api-key-cache-ttl)",
		Args:    cobra.ExactArgs(1),
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RevokeKey(cmd.Context(), args[0], time.Now()); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no key with id or name %q (gavel keys list shows them)", args[0])
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

var allRoles = []string{auth.RoleAdmin, auth.RolePolicyAdmin, auth.RoleAgent, auth.RoleViewer}

func checkRoles(roles []string) error {
	if len(roles) == 0 {
		return fmt.Errorf("--role: give at least one of %s", strings.Join(allRoles, ", "))
	}
	for _, r := range roles {
		if !slices.Contains(allRoles, r) {
			return fmt.Errorf("--role %q: want one of %s", r, strings.Join(allRoles, ", "))
		}
	}
	return nil
}

func checkKeyName(name string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("--name %q: give a name without spaces (who or what uses the key)", name)
	}
	return nil
}

// keyCreator names who created a key: the local user.
func keyCreator() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "cli"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

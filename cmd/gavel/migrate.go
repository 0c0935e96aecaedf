package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gavel-dev/gavel/store"
)

func newMigrateCmd() *cobra.Command {
	var dataDir string
	sc := &storeConfig{}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations (PostgreSQL with --postgres-url, else <data-dir>/gavel.db)",
		Long: `Apply the database migrations this gavel has and the database has not, and
print the versions applied. Migrations only go forward; running it again
when the schema is up to date changes nothing. gavel serve migrates on start
unless --migrate=false; replicas starting together take turns.`,
		Args:    cobra.NoArgs,
		PreRunE: bindConfig,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := sc.options(dataDir, nil)
			if opts.PostgresURL == "" {
				if err := os.MkdirAll(dataDir, 0o700); err != nil {
					return fmt.Errorf("--data-dir: %w", err)
				}
			}
			applied, err := store.Migrate(cmd.Context(), opts)
			out := cmd.OutOrStdout()
			for _, v := range applied {
				fmt.Fprintf(out, "applied migration %d\n", v)
			}
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintf(out, "%s schema up to date\n", store.KindOf(opts))
			}
			return nil
		},
	}
	cmd.Flags().String("config", "", "YAML file with flag values (keys are flag names)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "./gavel-data", "where gavel keeps its data (the SQLite database is gavel.db in it)")
	cmd.Flags().StringVar(&sc.postgresURL, "postgres-url", "", "PostgreSQL URL; the SQLite file in --data-dir when empty")
	return cmd
}

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// bindConfig fills every flag the command line left unset from the
// environment (GAVEL_<FLAG>, dashes as underscores) and then from the YAML
// file named by --config (keys are flag names). It is a PreRunE.
func bindConfig(cmd *cobra.Command, _ []string) error {
	fromFile := map[string]any{}
	if f := cmd.Flags().Lookup("config"); f != nil && f.Value.String() != "" {
		b, err := os.ReadFile(f.Value.String())
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := yaml.Unmarshal(b, &fromFile); err != nil {
			return fmt.Errorf("config %s: %w", f.Value.String(), err)
		}
	}
	known := map[string]bool{}
	var errs []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		known[f.Name] = true
		if f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		env := "GAVEL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := setFlag(f, v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", env, v, err))
			}
			return
		}
		if v, ok := fromFile[f.Name]; ok {
			if err := setFlag(f, v); err != nil {
				errs = append(errs, fmt.Sprintf("config key %s: %v", f.Name, err))
			}
		}
	})
	for k := range fromFile {
		if !known[k] {
			errs = append(errs, fmt.Sprintf("config key %q is not a flag of %q", k, cmd.CommandPath()))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

func setFlag(f *pflag.Flag, v any) error {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if err := f.Value.Set(fmt.Sprint(e)); err != nil {
				return err
			}
		}
		return nil
	case string:
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			return sv.Replace(strings.Split(v, ","))
		}
		return f.Value.Set(v)
	default:
		return f.Value.Set(fmt.Sprint(v))
	}
}

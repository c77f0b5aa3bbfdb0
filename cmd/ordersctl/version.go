package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/buildinfo"
)

func (c *cli) versionCmd() *cobra.Command {
	var out *format
	cmd := &cobra.Command{
		Use:   "version [flags]",
		Short: "Print the version, commit and Go version of this build",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			info := buildinfo.Read()
			if *out == jsonFormat {
				return writeJSON(c.stdout, info)
			}
			commit := info.Commit
			if info.Modified {
				commit += ", modified"
			}
			_, err := fmt.Fprintf(c.stdout, "ordersctl %s (commit %s, %s)\n", info.Version, commit, info.GoVersion)
			return err
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

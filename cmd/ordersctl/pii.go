package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/pii"
)

func (c *cli) piiCmd() *cobra.Command {
	cmd := groupCmd("pii", "Manage the data keys that seal personal data (docs/privacy.md)")
	cmd.AddCommand(c.piiStatusCmd(), c.piiRotateCmd(), c.piiNewMasterKeyCmd())
	return cmd
}

func (c *cli) piiStatusCmd() *cobra.Command {
	var out *format
	cmd := &cobra.Command{
		Use:   "status [flags]",
		Short: "Count the data keys per master key that wraps them",
		Long: `Counts the customers' data keys per master key (by its fingerprint), and names the master key of
PII_MASTER_KEY_FILE when it is set: after a rotation every key is wrapped by it.

Reads DATABASE_URL, and PII_MASTER_KEY_FILE when set.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := envconfig.New(c.getenv)
			dbURL := r.Required("DATABASE_URL")
			current := ""
			if path := r.String("PII_MASTER_KEY_FILE", ""); path != "" {
				k, err := pii.LoadMasterKey(path)
				r.Check(err == nil, "PII_MASTER_KEY_FILE", "%v", err)
				current = k.ID()
			}
			if err := r.Err(); err != nil {
				return err
			}
			clients, closeClients, err := connect(cmd.Context(), nil, dbURL, "", nil)
			if err != nil {
				return err
			}
			defer closeClients()
			st, err := pii.ReadStatus(cmd.Context(), clients.Pool)
			if err != nil {
				return err
			}
			if *out == jsonFormat {
				return writeJSON(c.stdout, struct {
					pii.Status
					Current string `json:"current_master_key,omitempty"`
				}{st, current})
			}
			for id, n := range st.ByMasterKey {
				mark := ""
				if id == current {
					mark = " (PII_MASTER_KEY_FILE)"
				}
				fmt.Fprintf(c.stdout, "master key %s%s: %d data keys\n", id, mark, n)
			}
			_, err = fmt.Fprintf(c.stdout, "%d data keys\n", st.DataKeys)
			return err
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func (c *cli) piiRotateCmd() *cobra.Command {
	var out *format
	cmd := &cobra.Command{
		Use:   "rotate-master-key [flags]",
		Short: "Re-wrap every data key with the master key of PII_MASTER_KEY_FILE",
		Long: `Re-wraps every customer's data key that another master key wrapped with the master key of
PII_MASTER_KEY_FILE; the previous master keys, in PII_PREVIOUS_MASTER_KEY_FILES (comma-separated),
unwrap them. The data keys themselves do not change, so nothing sealed is re-encrypted. Safe beside
running services, and to run again (it re-wraps what is left). The procedure (docs/privacy.md):
deploy the services with the new key in PII_MASTER_KEY_FILE and the old one in
PII_PREVIOUS_MASTER_KEY_FILES, run this, check "ordersctl pii status", then remove the old key from
the services and destroy it.

Reads DATABASE_URL, PII_MASTER_KEY_FILE and PII_PREVIOUS_MASTER_KEY_FILES.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := envconfig.New(c.getenv)
			dbURL := r.Required("DATABASE_URL")
			keys := pii.ReadConfig(r)
			if err := r.Err(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Hour)
			defer cancel()
			clients, closeClients, err := connect(ctx, nil, dbURL, "", nil)
			if err != nil {
				return err
			}
			defer closeClients()
			res, err := pii.Rotate(ctx, clients.Pool, keys.MasterKey, keys.Previous, 500)
			if err != nil {
				return err
			}
			if *out == jsonFormat {
				return writeJSON(c.stdout, res)
			}
			_, err = fmt.Fprintf(c.stdout, "re-wrapped %d data keys; all %d are wrapped by master key %s\n", res.Rewrapped, res.Total, res.MasterKeyID)
			return err
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

func (c *cli) piiNewMasterKeyCmd() *cobra.Command {
	var ifMissing bool
	cmd := &cobra.Command{
		Use:   "new-master-key [--if-missing] FILE",
		Short: "Write a new random master key to a new file (mode 600)",
		Long: `Writes a new random master key (standard base64 of 32 bytes) to FILE, which must not exist, readable
by its owner only, and prints its fingerprint. Give it to the services as PII_MASTER_KEY_FILE (on
Kubernetes, as a Secret), and keep a copy where your backups of the database are not: whoever holds
both reads every customer's personal data. With --if-missing, a FILE that already holds a master key
is kept (its fingerprint is printed); one that holds anything else is an error.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("new-master-key needs the file to write")
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if ifMissing {
				if k, err := pii.LoadMasterKey(args[0]); err == nil {
					_, err = fmt.Fprintf(c.stdout, "kept master key %s in %s\n", k.ID(), args[0])
					return err
				} else if _, statErr := os.Stat(args[0]); statErr == nil {
					return err // there, but not a master key: never overwritten
				}
			}
			text := pii.NewMasterKeyText()
			k, err := pii.ParseMasterKey([]byte(text))
			if err != nil {
				return err
			}
			f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.WriteString(text); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "wrote master key %s to %s\n", k.ID(), args[0])
			return err
		},
	}
	cmd.Flags().BoolVar(&ifMissing, "if-missing", false, "keep a master key the file already holds")
	return cmd
}

package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/auth"
)

func (c *cli) tokenCmd() *cobra.Command {
	var sub, role, customerID string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "token --sub SUBJECT --role customer|staff|admin [--customer-id ID] [--ttl DURATION]",
		Short: "Print a development bearer token (AUTH_MODE=dev)",
		Long: `Prints a bearer token signed with the local stack's development key (created under AUTH_DEV_DIR,
default .local/auth, on first use), which the services trust when they run with AUTH_MODE=dev (what
make up runs). It carries sub, the role (claim orders_role) and, for a customer, the customer id (claim
orders_customer_id); issuer orders-dev and audience orders unless AUTH_ISSUER and AUTH_AUDIENCE say
otherwise. In production (AUTH_MODE=oidc) tokens come from the identity provider and this command
refuses to run.

  TOKEN=$(ordersctl token --sub ada --role staff)
  curl -H "Authorization: Bearer $TOKEN" localhost:8081/orders`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return usageErrorf("--role: %v", err)
			}
			if sub == "" {
				return usageErrorf("--sub is required")
			}
			if r == auth.Customer && customerID == "" {
				return usageErrorf("--customer-id is required with --role customer")
			}
			if r != auth.Customer && customerID != "" {
				return usageErrorf("--customer-id goes with --role customer only")
			}
			if ttl <= 0 || ttl > 30*24*time.Hour {
				return usageErrorf("--ttl must be from 1s to 720h")
			}
			key, err := c.devKey()
			if err != nil {
				return err
			}
			tok, err := key.Sign(auth.TokenRequest{Issuer: c.getenv("AUTH_ISSUER"), Audience: c.getenv("AUTH_AUDIENCE"),
				Subject: sub, Role: r, CustomerID: customerID, TTL: ttl})
			if err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&sub, "sub", "", "the subject: who acts (recorded as the actor of the events)")
	cmd.Flags().StringVar(&role, "role", "", "customer, staff or admin")
	cmd.Flags().StringVar(&customerID, "customer-id", "", "the customer a customer token is bound to")
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	return cmd
}

// devKey is the local stack's signing key, refused outside development mode.
func (c *cli) devKey() (auth.DevKey, error) {
	if m := c.getenv("AUTH_MODE"); m != "" && m != auth.ModeDev {
		return auth.DevKey{}, fmt.Errorf("AUTH_MODE is %s: tokens come from the identity provider, not from ordersctl", m)
	}
	dir := c.getenv("AUTH_DEV_DIR")
	if dir == "" {
		dir = auth.DefaultDevDir(c.getenv)
	}
	return auth.EnsureDevKey(dir)
}

// operatorToken is the bearer token ordersctl sends to the projectors' operator endpoints: ORDERS_TOKEN
// (an admin's token from the identity provider), or in development mode one it signs itself.
func (c *cli) operatorToken() (string, error) {
	if t := c.getenv("ORDERS_TOKEN"); t != "" {
		return t, nil
	}
	if c.getenv("AUTH_MODE") != auth.ModeDev {
		return "", errors.New("set ORDERS_TOKEN to an admin's bearer token (or AUTH_MODE=dev on the local stack)")
	}
	key, err := c.devKey()
	if err != nil {
		return "", err
	}
	return key.Sign(auth.TokenRequest{Issuer: c.getenv("AUTH_ISSUER"), Audience: c.getenv("AUTH_AUDIENCE"),
		Subject: "ordersctl", Role: auth.Admin, TTL: 5 * time.Minute})
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/orders-oss/orders/internal/envconfig"
)

// replay asks a running projector to replay an order's parked events (the projector owns its parking
// state, so the replay runs inside it, between two batches).
func replay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ordersctl projector replay", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ordersctl projector replay orders|search ORDER_ID\n\nReplays the order's parked events in the running projector: orders at PROJECTOR_ORDERS_URL\n(default http://127.0.0.1:8083), search at PROJECTOR_SEARCH_URL (default http://127.0.0.1:8084).")
	}
	if len(args) != 2 || (args[0] != "search" && args[0] != "orders") {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			fs.Usage()
			return nil
		}
		fs.Usage()
		return errUsage
	}
	r := envconfig.New(getenv)
	base := strings.TrimRight(r.String("PROJECTOR_SEARCH_URL", "http://127.0.0.1:8084"), "/")
	if args[0] == "orders" {
		base = strings.TrimRight(r.String("PROJECTOR_ORDERS_URL", "http://127.0.0.1:8083"), "/")
	}
	if err := r.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/parked/"+url.PathEscape(args[1])+"/replay", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reach the %s projector at %s: %w", args[0], base, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("replay %s: %s: %s", args[1], res.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	return nil
}

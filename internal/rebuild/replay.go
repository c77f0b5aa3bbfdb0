package rebuild

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// ReplayParked asks a running projector (its operator endpoint at baseURL, projection.Loop.Routes) to
// replay an order's parked events, and returns its answer. The projector owns its parking state, so the
// replay runs inside it, between two batches; the order flows again when they all apply. client nil is
// http.DefaultClient; bound the call with ctx. The endpoint needs an admin's bearer token.
func ReplayParked(ctx context.Context, client *http.Client, baseURL, token, orderID string) (string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	base := strings.TrimRight(baseURL, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/parked/"+url.PathEscape(orderID)+"/replay", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("reach the projector at %s: %w", base, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("replay %s: %s: %s", orderID, res.Status, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body)), nil
}

package searchindex

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"
)

// Alias is the alias the index reads and writes through.
func (ix *Index) Alias() string { return ix.alias }

// Targets returns the indices the alias points at (none when it does not exist).
func (ix *Index) Targets(ctx context.Context) ([]string, error) {
	res, err := opensearchapi.IndicesGetAliasRequest{Name: []string{ix.alias}}.Do(ctx, ix.client)
	raw, err := check("get alias "+ix.alias, res, err, http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	var byIndex map[string]json.RawMessage
	if err := json.Unmarshal(raw, &byIndex); err != nil {
		return nil, fmt.Errorf("get alias %s: %w", ix.alias, err)
	}
	var out []string
	for name := range byIndex {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

var generationSuffix = regexp.MustCompile(`-v([0-9]+)$`)

// NextIndexName is the name of the index after current: orders-v1 -> orders-v2. A name without a
// -vN suffix gets -v2.
func NextIndexName(current string) string {
	if m := generationSuffix.FindStringSubmatch(current); m != nil {
		n, _ := strconv.Atoi(m[1])
		return strings.TrimSuffix(current, m[0]) + "-v" + strconv.Itoa(n+1)
	}
	return current + "-v2"
}

// Create creates index with Mapping, without touching the alias. It fails when the index exists.
func (ix *Index) Create(ctx context.Context, index string) error {
	res, err := opensearchapi.IndicesCreateRequest{Index: index, Body: strings.NewReader(Mapping)}.Do(ctx, ix.client)
	_, err = check("create index "+index, res, err)
	return err
}

// SwapAlias moves the alias from one index to another in one atomic request: readers see either the
// old index or the new one, never none.
func (ix *Index) SwapAlias(ctx context.Context, from, to string) error {
	body, _ := json.Marshal(map[string]any{"actions": []any{
		map[string]any{"remove": map[string]any{"index": from, "alias": ix.alias}},
		map[string]any{"add": map[string]any{"index": to, "alias": ix.alias}},
	}})
	res, err := opensearchapi.IndicesUpdateAliasesRequest{Body: strings.NewReader(string(body))}.Do(ctx, ix.client)
	_, err = check("swap alias "+ix.alias, res, err)
	return err
}

// DeleteIndex deletes an index (a missing one is not an error).
func (ix *Index) DeleteIndex(ctx context.Context, index string) error {
	res, err := opensearchapi.IndicesDeleteRequest{Index: []string{index}}.Do(ctx, ix.client)
	_, err = check("delete index "+index, res, err, http.StatusNotFound)
	return err
}

// Recreate deletes the index behind the alias and creates it again, empty, behind the alias (an
// in-place rebuild). Deleting documents one by one would not do: OpenSearch remembers a deleted
// document's external version for a while (index.gc_deletes), and would refuse rewriting it from
// version 1 as stale.
func (ix *Index) Recreate(ctx context.Context) (string, error) {
	targets, err := ix.Targets(ctx)
	if err != nil {
		return "", err
	}
	if len(targets) != 1 {
		return "", fmt.Errorf("alias %s points at %d indices (%v), want exactly one", ix.alias, len(targets), targets)
	}
	if err := ix.DeleteIndex(ctx, targets[0]); err != nil {
		return "", err
	}
	return targets[0], ix.Ensure(ctx, targets[0])
}

//go:build integration

package testenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/testenv"
)

// These smoke tests prove that the three real servers work from Go with the project's chosen clients,
// each on resources of the test's own.

func TestPostgresRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.Postgres(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE smoke (id int PRIMARY KEY, note text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO smoke VALUES ($1, $2)`, 7, "seven"); err != nil {
		t.Fatal(err)
	}
	var note string
	if err := pool.QueryRow(ctx, `SELECT note FROM smoke WHERE id = $1`, 7).Scan(&note); err != nil {
		t.Fatal(err)
	}
	if note != "seven" {
		t.Fatalf("note = %q, want %q", note, "seven")
	}
}

func TestKafkaProduceConsumeCommitReset(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	brokers := testenv.KafkaBrokers(t)
	topic := testenv.Topic(t, 3)
	group := testenv.Name(t)

	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	const n = 30
	want := map[string]bool{}
	for i := range n {
		v := fmt.Sprintf("value-%02d", i)
		want[v] = true
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "order-%d", i%5), Value: []byte(v)}
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}

	// consumeAll reads n records in the group, commits them by hand and leaves the group.
	consumeAll := func(round string) map[string]bool {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		got := map[string]bool{}
		for len(got) < n {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("%s: got %d of %d records before the deadline", round, len(got), n)
			}
			fs.EachError(func(tp string, p int32, err error) { t.Fatalf("%s: fetch %s/%d: %v", round, tp, p, err) })
			fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				t.Fatalf("%s: commit: %v", round, err)
			}
			cl.AllowRebalance()
		}
		return got
	}

	if got := consumeAll("first read"); len(got) != n {
		t.Fatalf("first read: %d distinct records, want %d", len(got), n)
	}
	adm := testenv.Admin(t)
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	committed.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != n {
		t.Fatalf("committed offsets add up to %d, want %d", total, n)
	}

	// Reset the (now empty) group to the earliest offsets and read the same records again.
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adm.CommitOffsets(ctx, group, starts.Offsets())
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatalf("reset offsets: %v", err)
	}
	got := consumeAll("re-read after reset")
	for v := range want {
		if !got[v] {
			t.Errorf("re-read after reset is missing %s", v)
		}
	}
}

func TestOpenSearchIndexBulkSearch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, err := opensearch.NewClient(opensearch.Config{Addresses: []string{testenv.OpenSearchURL(t)}})
	if err != nil {
		t.Fatal(err)
	}
	index := testenv.IndexPrefix(t) + "-orders"
	mapping := `{"mappings":{"properties":{"customer_name":{"type":"text","fields":{"raw":{"type":"keyword"}}},"status":{"type":"keyword"},"total":{"type":"long"}}}}`
	res, err := opensearchapi.IndicesCreateRequest{Index: index, Body: strings.NewReader(mapping)}.Do(ctx, client)
	mustOK(t, "create index", res, err)

	var body bytes.Buffer
	docs := []struct {
		ID, Name, Status string
		Total            int
	}{{"o1", "Ada Lovelace", "placed", 3998}, {"o2", "Charles Babbage", "shipped", 1200}, {"o3", "Ada Byron", "paid", 10}}
	for _, d := range docs {
		fmt.Fprintf(&body, `{"index":{"_index":%q,"_id":%q,"version":3,"version_type":"external"}}`+"\n", index, d.ID)
		fmt.Fprintf(&body, `{"customer_name":%q,"status":%q,"total":%d}`+"\n", d.Name, d.Status, d.Total)
	}
	res, err = opensearchapi.BulkRequest{Body: &body, Refresh: "true"}.Do(ctx, client)
	raw := mustOK(t, "bulk", res, err)
	var bulk struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &bulk); err != nil {
		t.Fatal(err)
	}
	if len(bulk.Items) != len(docs) {
		t.Fatalf("bulk answered %d items, want %d", len(bulk.Items), len(docs))
	}
	for i, it := range bulk.Items {
		if it["index"].Status != 201 {
			t.Errorf("bulk item %d status = %d, want 201", i, it["index"].Status)
		}
	}

	query := `{"query":{"match":{"customer_name":"ada"}},"sort":[{"total":"desc"}]}`
	res, err = opensearchapi.SearchRequest{Index: []string{index}, Body: strings.NewReader(query)}.Do(ctx, client)
	raw = mustOK(t, "search", res, err)
	var sr struct {
		Hits struct {
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &sr); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range sr.Hits.Hits {
		ids = append(ids, h.ID)
	}
	if strings.Join(ids, ",") != "o1,o3" {
		t.Fatalf("search for ada = %v, want [o1 o3]", ids)
	}
}

// mustOK fails the test unless the call worked and OpenSearch answered 2xx (opensearch-go returns
// err == nil for 4xx and 5xx answers), and returns the body.
func mustOK(t *testing.T, what string, res *opensearchapi.Response, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", what, err)
	}
	if res.IsError() {
		t.Fatalf("%s: %s: %s", what, res.Status(), raw)
	}
	return raw
}

func TestPrivateKafkaStopStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := testenv.StartKafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Brokers()...), kgo.DefaultProduceTopic("smoke"),
		kgo.ConsumeTopics("smoke"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "smoke"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatalf("produce before stop: %v", err)
	}
	b.Stop()
	// (No produce while it is down: the idempotent producer keeps a record it may have sent until the
	// broker answers, whatever the context says; see FIELD-NOTES.)
	if conn, err := net.DialTimeout("tcp", b.Brokers()[0], time.Second); err == nil {
		conn.Close()
		t.Fatal("the stopped broker still accepts connections")
	}
	b.Start()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatalf("produce after restart: %v", err)
	}
	var got []string
	for len(got) < 2 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %v before the deadline, want [before after]", got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if strings.Join(got, ",") != "before,after" {
		t.Fatalf("records after a restart = %v, want [before after]", got)
	}
}

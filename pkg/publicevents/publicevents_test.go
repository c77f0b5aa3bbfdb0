package publicevents

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orders-oss/orders/pkg/events"
)

var update = flag.Bool("update", false, "rewrite the golden public records in testdata/")

// internalGoldens are the golden files of the internal events, every schema version of every type
// (pkg/events/testdata): what a public record is made from.
func internalGoldens(t *testing.T) []events.Envelope {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "events", "testdata", "*.json"))
	if err != nil || len(paths) < 10 {
		t.Fatalf("internal golden files: %v (%d found)", err, len(paths))
	}
	var out []events.Envelope
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var e events.Envelope
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, e)
	}
	return out
}

func goldenPath(typ string) string { return filepath.Join("testdata", typ+".json") }

func encode(t *testing.T, e Event) []byte {
	t.Helper()
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestGoldenPublicRecords pins the public schema: the public record made from every schema version of
// an internal event is the same golden file (an internal schema change, a new version with its
// upcaster, changes nothing here), each public type has one, and the internal facts without a public
// event have none.
func TestGoldenPublicRecords(t *testing.T) {
	made := map[string][]byte{}
	for _, e := range internalGoldens(t) {
		p, err := events.DecodeEnvelope(e)
		if err != nil {
			t.Fatalf("%s v%d: %v", e.Type, e.SchemaVersion, err)
		}
		pub, ok, err := From(e, p)
		if err != nil {
			t.Fatalf("From(%s v%d) error = %v", e.Type, e.SchemaVersion, err)
		}
		want := map[string]string{events.TypeOrderPlaced: TypeOrderPlaced, events.TypePaymentConfirmed: TypeOrderPaid,
			events.TypeOrderShipped: TypeOrderShipped, events.TypeOrderDelivered: TypeOrderDelivered, events.TypeOrderCancelled: TypeOrderCancelled}[e.Type]
		if ok != (want != "") || ok && pub.Type != want {
			t.Errorf("From(%s v%d) = %q, %v; want %q", e.Type, e.SchemaVersion, pub.Type, ok, want)
			continue
		}
		if !ok {
			continue
		}
		got := encode(t, pub)
		if prev, seen := made[pub.Type]; seen && string(prev) != string(got) {
			t.Errorf("%s: the public record differs by the internal schema version it was made from:\n%s\n%s", pub.Type, prev, got)
		}
		made[pub.Type] = got
	}
	for _, typ := range Types {
		got, ok := made[typ]
		if !ok {
			t.Errorf("no internal golden event gives a public %s", typ)
			continue
		}
		if *update {
			if err := os.WriteFile(goldenPath(typ), got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(goldenPath(typ))
		if err != nil {
			t.Fatalf("%v (go test ./pkg/publicevents -update writes it)", err)
		}
		if string(got) != string(want) {
			t.Errorf("the public record %s changed; the public schema is a contract (docs/asyncapi.yaml): a change is a new topic, orders.public.v2\ngot:\n%s\nwant:\n%s", typ, got, want)
		}
	}
	if files, _ := filepath.Glob(filepath.Join("testdata", "*.json")); len(files) != len(Types) {
		t.Errorf("%d golden public records for %d public types", len(files), len(Types))
	}
}

// The public records carry no personal data: nothing of the internal samples' names, emails,
// addresses or cancellation reason, and no customer id.
func TestPublicRecordsHoldNoPersonalData(t *testing.T) {
	for _, typ := range Types {
		raw, err := os.ReadFile(goldenPath(typ))
		if err != nil {
			t.Fatal(err)
		}
		for _, personal := range []string{"Ada", "ada@", "Analytical", "NW1", "London", "Paris", "customer", "cus_1042", "reason", "ciphertext", "key_id"} {
			if strings.Contains(string(raw), personal) {
				t.Errorf("public %s holds %q:\n%s", typ, personal, raw)
			}
		}
	}
}

// A payload whose personal data is erased (absent) gives the same public record as one that holds it.
func TestPublicRecordIgnoresPersonalData(t *testing.T) {
	for _, e := range internalGoldens(t) {
		if e.Type != events.TypeOrderPlaced && e.Type != events.TypeOrderCancelled {
			continue
		}
		p, err := events.DecodeEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		a, _, _ := From(e, p)
		switch x := p.(type) {
		case events.OrderPlaced:
			x.Customer = events.Customer{ID: x.Customer.ID}
			x.ShippingAddress = events.Personal[events.Address]{}
			p = x
		case events.OrderCancelled:
			x.Reason = events.Personal[string]{}
			p = x
		}
		b, _, _ := From(e, p)
		if string(encode(t, a)) != string(encode(t, b)) {
			t.Errorf("%s: the public record depends on the personal data", e.Type)
		}
	}
	if !slices.Contains(Types, TypeOrderPaid) {
		t.Fatal("the types list lost OrderPaid")
	}
}

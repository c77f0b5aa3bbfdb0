package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files of the current schema versions in testdata/")

// samples has one payload of every event type, every field set; the golden files pin their wire format.
// The golden file of every older schema version of a type (what an older release wrote, never
// rewritten) holds the same facts, so that upcasting it gives the sample.
var samples = []Payload{
	OrderPlaced{
		Customer:        Customer{ID: "cus_1042", Name: Plain("Ada Lovelace"), Email: Plain("ada@example.com")},
		ShippingAddress: Plain(Address{Name: "Ada Lovelace", Line1: "12 Analytical St", Line2: "Flat 3", City: "London", PostalCode: "NW1 6XE", Country: "GB"}),
		Currency:        "EUR",
		Items: []LineItem{
			{SKU: "BK-001", Name: "Notes on the Engine", Quantity: 2, UnitPrice: 1999},
			{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 0},
		},
	},
	OrderItemAdded{Item: LineItem{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 250}},
	OrderItemRemoved{SKU: "PN-7"},
	ShippingAddressChanged{ShippingAddress: Plain(Address{Name: "Ada", Line1: "1 Rue", Line2: "Apt 2", City: "Paris", PostalCode: "75001", Country: "FR"})},
	PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "pay_123"},
	OrderShipped{Carrier: "DHL", Parcels: []Parcel{{TrackingNumber: "JD014600006281230707"}}},
	OrderDelivered{},
	OrderCancelled{Reason: Plain("customer asked"), RefundDue: 3998},
	PersonalDataErased{ErasureID: "01936f3e-9000-7000-8000-00000000e1a5", RequestedAt: time.Date(2026, 11, 22, 9, 59, 58, 0, time.UTC)},
}

// goldenOrder is the order id of every golden file (sealed fields are bound to it).
const goldenOrder = "01936f3e-0000-7000-8000-000000000001"

// sealedSample is a sample as its current schema version writes it: personal data sealed with the
// test key (testKeys), the same bytes every run.
func sealedSample(t testing.TB, p Payload) Payload {
	t.Helper()
	sealed, err := SealAt(p, 0, goldenOrder, testKeys)
	if err != nil {
		t.Fatalf("SealAt(%s) error = %v", p.EventType(), err)
	}
	return sealed
}

func sample(t *testing.T, typ string) Payload {
	t.Helper()
	for _, p := range samples {
		if p.EventType() == typ {
			return p
		}
	}
	t.Fatalf("no sample of %s", typ)
	return nil
}

func TestGoldenEnvelopes(t *testing.T) {
	for i, plain := range samples {
		t.Run(plain.EventType(), func(t *testing.T) {
			p := sealedSample(t, plain)
			typ, sv, data, err := Encode(p)
			if err != nil {
				t.Fatalf("Encode(%T) error = %v", p, err)
			}
			env := Envelope{
				Position: int64(100 + i), EventID: uuid.MustParse("01936f3e-8c1a-7cc4-9e0a-6f1d2b3c4d5e"),
				OrderID: goldenOrder, Version: int64(i + 1), Type: typ, SchemaVersion: sv,
				OccurredAt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), RecordedAt: time.Date(2026, 11, 22, 10, 0, 0, 1000, time.UTC),
				Data:     data,
				Metadata: Metadata{CorrelationID: "corr-1", CausationID: "req-1", Actor: "ada", ActorRole: "customer"},
			}
			got, err := json.MarshalIndent(env, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := goldenPath(p.EventType(), sv)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (a new schema version? run go test ./pkg/events -update to create its golden file)", err)
			}
			if string(got) != string(want) {
				t.Errorf("wire format of %s v%d changed; a stored event never changes shape: give the type a new schema version with an upcaster and a downcaster (evolution.go), then go test -update:\ngot:\n%s\nwant:\n%s", p.EventType(), sv, got, want)
			}
			// The golden file, as a consumer reads it, decodes back to the same payload.
			var back Envelope
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatal(err)
			}
			dp, err := DecodeEnvelope(back)
			if err != nil {
				t.Fatalf("DecodeEnvelope(golden) error = %v", err)
			}
			if !reflect.DeepEqual(dp, p) {
				t.Errorf("DecodeEnvelope(golden) = %#v, want %#v", dp, p)
			}
			// Its personal data opens, with the key and the order it was sealed for, to the sample's.
			if opened := openAll(t, dp, goldenOrder, testKeys); !reflect.DeepEqual(opened, plain) {
				t.Errorf("the golden file's personal data opens to %v, want the sample's", opened)
			}
		})
	}
}

// typeConstants returns the values of the Type* constants declared in payloads.go.
func typeConstants(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "payloads.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Type") {
					continue
				}
				s, err := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				types = append(types, s)
			}
		}
	}
	return types
}

// TestEveryTypeIsCovered keeps the type constants, the codec's switch, the samples and the golden
// files in step: a type missing from any of them fails here.
func TestEveryTypeIsCovered(t *testing.T) {
	types := typeConstants(t)
	if len(types) != 9 {
		t.Errorf("found %d Type constants in payloads.go, want 9: %v", len(types), types)
	}
	for _, typ := range types {
		c, ok := codecOf(typ)
		if !ok || c.version < 1 {
			t.Errorf("codecOf(%q) = version %d, %v; want a case with version >= 1", typ, c.version, ok)
			continue
		}
		p := sample(t, typ)
		if !c.is(p) {
			t.Errorf("codecOf(%q).is(%T) = false", typ, p)
		}
		if p.EventType() != typ {
			t.Errorf("%T.EventType() = %q, want %q", p, p.EventType(), typ)
		}
	}
	if len(samples) != len(types) {
		t.Errorf("%d samples for %d types", len(samples), len(types))
	}
	if !slices.Equal(allTypes, types) {
		t.Errorf("allTypes = %v, want the Type constants in order: %v", allTypes, types)
	}
	// Every older schema version has its upcaster, its downcaster and its golden file.
	for _, typ := range types {
		c, _ := codecOf(typ)
		for v := 1; v <= c.version; v++ {
			if _, err := os.Stat(goldenPath(typ, v)); err != nil {
				t.Errorf("%s v%d has no golden file: %v", typ, v, err)
			}
			if v < c.version && upcasters[typ][v] == nil && readers[typ][v] == nil {
				t.Errorf("%s has no upcaster from v%d to v%d, nor a reader of v%d", typ, v, v+1, v)
			}
			if v > 1 && downcasters[typ][v] == nil && writers[typ][v-1] == nil {
				t.Errorf("%s has no downcaster from v%d to v%d, nor a writer of v%d", typ, v, v-1, v-1)
			}
		}
	}
	for _, g := range goldenFiles(t) {
		c, ok := codecOf(g.typ)
		if !ok || g.version < 1 || g.version > c.version {
			t.Errorf("stale golden file %s: no such event type or schema version", g.path)
		}
	}
}

// golden is a golden file of testdata/: <Type>.v<schema version>.json.
type golden struct {
	path, typ string
	version   int
}

func goldenPath(typ string, version int) string {
	return filepath.Join("testdata", typ+".v"+strconv.Itoa(version)+".json")
}

func goldenFiles(t *testing.T) []golden {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []golden
	for _, p := range paths {
		typ, v, ok := strings.Cut(strings.TrimSuffix(filepath.Base(p), ".json"), ".v")
		n, err := strconv.Atoi(v)
		if !ok || err != nil {
			t.Errorf("golden file %s is not named <Type>.v<version>.json", p)
			continue
		}
		out = append(out, golden{path: p, typ: typ, version: n})
	}
	return out
}

// TestGoldenFilesReadThroughUpcasters reads every golden file, of every schema version, as a consumer
// does: each decodes, through the upcasters (or readers), to the type's sample, its personal data plain
// from a version that has it in plain text and sealed from one that seals it (opening to the
// sample's); and writing the sample at that schema version (SealAt and EncodeAt, the downcasters or
// writers) gives the golden file's data back.
func TestGoldenFilesReadThroughUpcasters(t *testing.T) {
	files := goldenFiles(t)
	if len(files) <= len(samples) {
		t.Fatalf("%d golden files for %d types: want the older schema versions' too", len(files), len(samples))
	}
	for _, g := range files {
		raw, err := os.ReadFile(g.path)
		if err != nil {
			t.Fatal(err)
		}
		var env Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			t.Fatalf("%s: %v", g.path, err)
		}
		if env.Type != g.typ || env.SchemaVersion != g.version {
			t.Errorf("%s holds %s v%d", g.path, env.Type, env.SchemaVersion)
		}
		p, err := DecodeEnvelope(env)
		want := sample(t, g.typ)
		if SealsAt(want, g.version) {
			want = sealedSample(t, want)
		}
		if err != nil || !reflect.DeepEqual(p, want) {
			t.Errorf("DecodeEnvelope(%s) = %#v, %v; want %#v", g.path, p, err, want)
			continue
		}
		if opened := openAll(t, p, goldenOrder, testKeys); !reflect.DeepEqual(opened, sample(t, g.typ)) {
			t.Errorf("DecodeEnvelope(%s) opens to %v, want the sample", g.path, opened)
		}
		typ, sv, data, err := EncodeAt(p, g.version)
		if err != nil || typ != g.typ || sv != g.version || !sameJSON(data, env.Data) {
			t.Errorf("EncodeAt(%s sample, %d) = %s v%d %s, %v; want the data of %s", g.typ, g.version, typ, sv, data, err, g.path)
		}
	}
}

// sameJSON reports whether two JSON values are equal, whatever their layout and key order.
func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func TestUpcastOrderShippedV1(t *testing.T) {
	tests := []struct {
		data string
		want Payload
	}{
		{`{"carrier":"DHL","tracking_number":"JD1"}`, OrderShipped{Carrier: "DHL", Parcels: []Parcel{{TrackingNumber: "JD1"}}}},
		{`{"tracking_number":"","carrier":"UPS"}`, OrderShipped{Carrier: "UPS", Parcels: []Parcel{{TrackingNumber: ""}}}},
	}
	for _, tt := range tests {
		got, err := Decode(TypeOrderShipped, 1, json.RawMessage(tt.data))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decode(OrderShipped v1 %s) = %#v, %v; want %#v", tt.data, got, err, tt.want)
		}
	}
	// v1 data is read as strictly as current data: no v2 field in a v1 event, no v1 field in a v2 one.
	for _, bad := range []struct {
		version int
		data    string
	}{
		{1, `{"carrier":"DHL","parcels":[{"tracking_number":"JD1"}]}`},
		{1, `{"carrier":"DHL","tracking_number":"JD1","parcels":[]}`},
		{2, `{"carrier":"DHL","tracking_number":"JD1"}`},
	} {
		if p, err := Decode(TypeOrderShipped, bad.version, json.RawMessage(bad.data)); !errors.Is(err, ErrMalformedPayload) {
			t.Errorf("Decode(OrderShipped v%d %s) = %#v, %v; want ErrMalformedPayload", bad.version, bad.data, p, err)
		}
	}
}

func TestEncodeAtWritesOlderSchemaVersions(t *testing.T) {
	one := OrderShipped{Carrier: "DHL", Parcels: []Parcel{{TrackingNumber: "JD1"}}}
	typ, sv, data, err := EncodeAt(one, 1)
	if err != nil || typ != TypeOrderShipped || sv != 1 || !sameJSON(data, []byte(`{"carrier":"DHL","tracking_number":"JD1"}`)) {
		t.Errorf("EncodeAt(one parcel, 1) = %s v%d %s, %v; want OrderShipped v1 with its tracking_number", typ, sv, data, err)
	}
	for _, max := range []int{0, 2, 9} { // latest, the current version, above it
		if _, sv, data, err := EncodeAt(one, max); err != nil || sv != 2 || !sameJSON(data, []byte(`{"carrier":"DHL","parcels":[{"tracking_number":"JD1"}]}`)) {
			t.Errorf("EncodeAt(one parcel, %d) = v%d %s, %v; want v2", max, sv, data, err)
		}
	}
	// Types still at version 1 are written as they are.
	if typ, sv, _, err := EncodeAt(OrderDelivered{}, 1); err != nil || typ != TypeOrderDelivered || sv != 1 {
		t.Errorf("EncodeAt(OrderDelivered, 1) = %s v%d, %v", typ, sv, err)
	}
	// What v1 cannot say is refused rather than written wrong.
	two := OrderShipped{Carrier: "DHL", Parcels: []Parcel{{TrackingNumber: "A"}, {TrackingNumber: "B"}}}
	if typ, sv, data, err := EncodeAt(two, 1); err == nil || data != nil {
		t.Errorf("EncodeAt(two parcels, 1) = %s v%d %s, nil; want an error", typ, sv, data)
	}
}

// Personal data is written in the form its schema version has: plain at version 1, sealed at 2; the
// other form is refused rather than written wrong.
func TestEncodeAtNeedsPersonalDataInTheVersionsForm(t *testing.T) {
	for _, plain := range []Payload{sample(t, TypeOrderPlaced), sample(t, TypeShippingAddressChanged), sample(t, TypeOrderCancelled)} {
		sealed := sealedSample(t, plain)
		if _, _, _, err := EncodeAt(plain, 0); !errors.Is(err, ErrUnsealed) {
			t.Errorf("EncodeAt(plain %s, latest) error = %v, want ErrUnsealed", plain.EventType(), err)
		}
		if _, _, _, err := EncodeAt(sealed, 1); !errors.Is(err, ErrUnsealed) {
			t.Errorf("EncodeAt(sealed %s, 1) error = %v, want ErrUnsealed", plain.EventType(), err)
		}
		if _, sv, _, err := EncodeAt(plain, 1); err != nil || sv != 1 {
			t.Errorf("EncodeAt(plain %s, 1) = v%d, %v; want v1", plain.EventType(), sv, err)
		}
		if SealsAt(plain, 1) || !SealsAt(plain, 0) || !SealsAt(plain, 2) {
			t.Errorf("SealsAt(%s, 1|0|2) = %v|%v|%v, want false|true|true", plain.EventType(), SealsAt(plain, 1), SealsAt(plain, 0), SealsAt(plain, 2))
		}
		// SealAt for a writer pinned to version 1 leaves the payload plain.
		if p, err := SealAt(plain, 1, goldenOrder, testKeys); err != nil || !reflect.DeepEqual(p, plain) {
			t.Errorf("SealAt(%s, 1) = %v, %v; want it unchanged", plain.EventType(), p, err)
		}
	}
	if SealsAt(sample(t, TypePaymentConfirmed), 0) {
		t.Error("SealsAt(PaymentConfirmed) = true; it has no personal data")
	}
}

func TestParseWriteVersion(t *testing.T) {
	if LatestVersion() != 2 {
		t.Fatalf("LatestVersion() = %d, want 2", LatestVersion())
	}
	for in, want := range map[string]int{"": 0, "latest": 0, " latest ": 0, "1": 1, "2": 2} {
		if got, err := ParseWriteVersion(in); err != nil || got != want {
			t.Errorf("ParseWriteVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "3", "-1", "v2", "Latest", "1.5"} {
		if got, err := ParseWriteVersion(in); err == nil {
			t.Errorf("ParseWriteVersion(%q) = %d, nil; want an error", in, got)
		}
	}
}

func TestEncodeWritesTheCurrentVersion(t *testing.T) {
	want := map[string]int{
		TypeOrderPlaced: VersionOrderPlaced, TypeOrderItemAdded: VersionOrderItemAdded, TypeOrderItemRemoved: VersionOrderItemRemoved,
		TypeShippingAddressChanged: VersionShippingAddressChanged, TypePaymentConfirmed: VersionPaymentConfirmed,
		TypeOrderShipped: VersionOrderShipped, TypeOrderDelivered: VersionOrderDelivered, TypeOrderCancelled: VersionOrderCancelled,
		TypePersonalDataErased: VersionPersonalDataErased,
	}
	for _, p := range samples {
		typ, sv, _, err := Encode(sealedSample(t, p))
		if err != nil || typ != p.EventType() || sv != want[typ] {
			t.Errorf("Encode(%T) = %q, %d, %v; want %q, %d, nil", p, typ, sv, err, p.EventType(), want[p.EventType()])
		}
	}
}

// impostor claims to be an OrderShipped.
type impostor struct{ Carrier string }

func (impostor) EventType() string { return TypeOrderShipped }

// unregistered has a type name the codec does not know.
type unregistered struct{}

func (unregistered) EventType() string { return "OrderTeleported" }

func TestEncodeRefusesWhatDecodeCouldNotRead(t *testing.T) {
	var nilShipped *OrderShipped
	tests := []struct {
		name string
		p    Payload
	}{
		{"nil", nil},
		{"pointer", &OrderShipped{Carrier: "DHL", Parcels: []Parcel{{TrackingNumber: "1"}}}},
		{"nil pointer", nilShipped},
		{"foreign type with a known name", impostor{Carrier: "DHL"}},
		{"unknown type", unregistered{}},
	}
	for _, tt := range tests {
		if typ, sv, data, err := Encode(tt.p); err == nil {
			t.Errorf("Encode(%s) = %q, %d, %s; want an error", tt.name, typ, sv, data)
		}
	}
	var unknown *UnknownEventError
	if _, _, _, err := Encode(unregistered{}); !errors.As(err, &unknown) || unknown.Type != "OrderTeleported" {
		t.Errorf("Encode(unknown type) error = %v, want *UnknownEventError", err)
	}
}

func TestDecodeRefusesUnknownTypesAndVersions(t *testing.T) {
	shipped := json.RawMessage(`{"carrier":"DHL","tracking_number":"1"}`)
	tests := []struct {
		typ     string
		version int
		want    UnknownEventError
	}{
		{"OrderTeleported", 1, UnknownEventError{Type: "OrderTeleported", SchemaVersion: 1}},
		{"orderShipped", 1, UnknownEventError{Type: "orderShipped", SchemaVersion: 1}},
		{"", 1, UnknownEventError{Type: "", SchemaVersion: 1}},
		{TypeOrderShipped, 3, UnknownEventError{Type: TypeOrderShipped, SchemaVersion: 3, KnownVersion: 2}},
		{TypeOrderShipped, 0, UnknownEventError{Type: TypeOrderShipped, SchemaVersion: 0, KnownVersion: 2}},
		{TypeOrderDelivered, 2, UnknownEventError{Type: TypeOrderDelivered, SchemaVersion: 2, KnownVersion: 1}},
		{TypeOrderPlaced, 3, UnknownEventError{Type: TypeOrderPlaced, SchemaVersion: 3, KnownVersion: 2}},
	}
	for _, tt := range tests {
		p, err := Decode(tt.typ, tt.version, shipped)
		var got *UnknownEventError
		if !errors.As(err, &got) || *got != tt.want || p != nil {
			t.Errorf("Decode(%q, %d) = %v, %v; want nil, %#v", tt.typ, tt.version, p, err, tt.want)
		}
	}
}

func TestDecodeIsStrict(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		data string
	}{
		{"unknown field", TypePaymentConfirmed, `{"amount":1,"currency":"EUR","reference":"r","tip":1}`},
		{"unknown nested field", TypeOrderItemAdded, `{"item":{"sku":"A","name":"a","quantity":1,"unit_price":1,"colour":"red"}}`},
		{"missing field", TypeOrderPlaced, `{"customer":{"id":"c","name":{"key_id":"k","ciphertext":"c"},"email":{"key_id":"k","ciphertext":"c"}},"currency":"EUR","items":[]}`},
		{"plain text where a sealed field belongs", TypeOrderPlaced, `{"customer":{"id":"c","name":"Ada","email":{"key_id":"k","ciphertext":"c"}},"shipping_address":{"key_id":"k","ciphertext":"c"},"currency":"EUR","items":[]}`},
		{"a sealed field without its key", TypeOrderCancelled, `{"reason":{"ciphertext":"c"},"refund_due":0}`},
		{"null sealed field", TypeShippingAddressChanged, `{"shipping_address":null}`},
		{"missing nested field", TypeOrderItemAdded, `{"item":{"sku":"A","name":"a","quantity":1}}`},
		{"missing field in a list", TypeOrderPlaced, strings.Replace(goldenData(t, TypeOrderPlaced), `,"unit_price":1999`, ``, 1)},
		{"repeated key in a list", TypeOrderPlaced, strings.Replace(goldenData(t, TypeOrderPlaced), `"quantity":2`, `"quantity":2,"quantity":3`, 1)},
		{"differently cased key", TypeOrderItemRemoved, `{"SKU":"A"}`},
		{"repeated key", TypeOrderItemRemoved, `{"sku":"A","sku":"B"}`},
		{"null", TypeOrderItemRemoved, `null`},
		{"null object field", TypeShippingAddressChanged, `{"shipping_address":null}`},
		{"empty object", TypeOrderCancelled, `{}`},
		{"null time", TypePersonalDataErased, `{"erasure_id":"e","requested_at":null}`},
		{"array", TypeOrderDelivered, `[]`},
		{"empty", TypeOrderDelivered, ``},
		{"wrong JSON type", TypePaymentConfirmed, `{"amount":"12","currency":"EUR","reference":"r"}`},
		{"fraction", TypePaymentConfirmed, `{"amount":12.5,"currency":"EUR","reference":"r"}`},
		{"overflowing number", TypePaymentConfirmed, `{"amount":9223372036854775808,"currency":"EUR","reference":"r"}`},
		{"truncated", TypeOrderPlaced, `{"customer":`},
		{"trailing data", TypeOrderItemRemoved, `{"sku":"A"} {"sku":"B"}`},
		{"trailing garbage", TypeOrderItemRemoved, `{"sku":"A"}x`},
		{"missing field in a v2 list", TypeOrderShipped, `{"carrier":"DHL","parcels":[{}]}`},
		{"null in a v2 list", TypeOrderShipped, `{"carrier":"DHL","parcels":[null]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := codecOf(tt.typ)
			p, err := Decode(tt.typ, c.version, json.RawMessage(tt.data))
			if !errors.Is(err, ErrMalformedPayload) || p != nil {
				t.Errorf("Decode(%s, %s) = %#v, %v; want nil, ErrMalformedPayload", tt.typ, tt.data, p, err)
			}
		})
	}
}

// goldenData returns the compact data of a type's golden file.
func goldenData(t *testing.T, typ string) string {
	t.Helper()
	c, _ := codecOf(typ)
	raw, err := os.ReadFile(goldenPath(typ, c.version))
	if err != nil {
		t.Fatal(err)
	}
	var e Envelope
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, e.Data); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestDecodeIgnoresLayoutAndKeyOrder(t *testing.T) {
	// As Postgres jsonb gives it back: keys reordered, spaces added; and characters escaped.
	data := `{"n\u0061me": "Pen", "sku": "PN-\u0037", "unit_price": 250,` + "\n\t\r" + `"quantity": 1}`
	p, err := Decode(TypeOrderItemAdded, 1, json.RawMessage(`{ "item" : `+data+` }`))
	if want := sample(t, TypeOrderItemAdded); err != nil || !reflect.DeepEqual(p, want) {
		t.Errorf("Decode(reordered) = %#v, %v; want %#v", p, err, want)
	}
}

func TestCheckShapeRefusesTypesItCannotCheck(t *testing.T) {
	type withMap struct {
		M map[string]int `json:"m"`
	}
	if err := checkShape([]byte(`{"m":{}}`), reflect.TypeFor[withMap]()); err == nil {
		t.Error("checkShape(struct with a map) = nil, want an error")
	}
}

func TestRoundTrip(t *testing.T) {
	for _, p := range samples {
		p = sealedSample(t, p)
		typ, sv, data, err := Encode(p)
		if err != nil {
			t.Fatalf("Encode(%T) error = %v", p, err)
		}
		got, err := Decode(typ, sv, data)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Errorf("Decode(Encode(%#v)) = %#v, %v", p, got, err)
		}
	}
}

// FuzzDecode: Decode never panics, and what it accepts at schema version 1 is what a writer at version 1
// writes (up to layout and key order).
func FuzzDecode(f *testing.F) {
	for _, p := range samples {
		_, _, data, err := EncodeAt(p, 1)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p.EventType(), string(data))
	}
	f.Add(TypeOrderItemRemoved, `{"sku":"A\"}\\","x":1}`)
	f.Add(TypeOrderPlaced, `{"items":[{},null]}`)
	f.Fuzz(func(t *testing.T, typ, data string) {
		p, err := Decode(typ, 1, json.RawMessage(data))
		if err != nil {
			return
		}
		_, _, again, err := EncodeAt(p, 1)
		if err != nil {
			t.Fatalf("Encode(Decode(%s)) error = %v", data, err)
		}
		var in, out any
		if json.Unmarshal([]byte(data), &in) != nil || json.Unmarshal(again, &out) != nil || !reflect.DeepEqual(in, out) {
			t.Errorf("Decode(%s, %s) accepted data that re-encodes as %s", typ, data, again)
		}
	})
}

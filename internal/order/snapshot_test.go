package order

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

var update = flag.Bool("update", false, "record the fold digest (testdata/fold-digest.txt) for the current FoldSchemaVersion")

// rng is a small deterministic generator (splitmix64): the corpus must not change with a Go release.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// detKeys seals with a fixed AES-256-GCM key and a nonce derived from what it seals, so the corpus is
// the same every run (a real keyring draws nonces at random); it opens what it sealed.
type detKeys struct{ aead cipher.AEAD }

const detKeyID = "0193a0b1-0000-7000-8000-0000000c0a95"

var corpusKeys = func() detKeys {
	key := sha256.Sum256([]byte("the fold corpus' data key"))
	block, _ := aes.NewCipher(key[:])
	aead, _ := cipher.NewGCM(block)
	return detKeys{aead: aead}
}()

func (k detKeys) Seal(plaintext, aad []byte) (events.Sealed, error) {
	h := sha256.Sum256(append(append([]byte{}, aad...), plaintext...))
	nonce := h[:k.aead.NonceSize()]
	return events.Sealed{KeyID: detKeyID, Ciphertext: base64.StdEncoding.EncodeToString(k.aead.Seal(append([]byte{}, nonce...), nonce, plaintext, aad))}, nil
}

func (k detKeys) Open(s events.Sealed, aad []byte) ([]byte, error) {
	if s.KeyID != detKeyID {
		return nil, events.ErrErased
	}
	raw, err := base64.StdEncoding.DecodeString(s.Ciphertext)
	if err != nil {
		return nil, err
	}
	n := k.aead.NonceSize()
	return k.aead.Open(nil, raw[:n], raw[n:], aad)
}

// corpus is a fixed set of order histories, as stored envelopes (data encoded, some of them at an
// older schema version, as an older release wrote them: personal data in plain text; the others
// sealed). The histories need not follow the rules of
// the commands: Evolve applies whatever was recorded, and it is Evolve that is pinned here.
func corpus(t *testing.T) [][]events.Envelope {
	t.Helper()
	r := rng(42)
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	skus := []string{"BK-001", "PN-7", "MG-3", "CUP-12"}
	addr := func() events.Address {
		return events.Address{Name: fmt.Sprintf("N%d", r.intn(9)), Line1: fmt.Sprintf("%d Main St", r.intn(99)), Line2: []string{"", "Flat 2"}[r.intn(2)],
			City: []string{"London", "Paris", "Berlin"}[r.intn(3)], PostalCode: fmt.Sprintf("P%d", r.intn(999)), Country: []string{"GB", "FR", "DE"}[r.intn(3)]}
	}
	item := func() events.LineItem {
		sku := skus[r.intn(len(skus))]
		return events.LineItem{SKU: sku, Name: "name of " + sku, Quantity: int64(1 + r.intn(5)), UnitPrice: int64(r.intn(3000))}
	}
	var out [][]events.Envelope
	for o := range 300 {
		id := fmt.Sprintf("01936f3e-0000-7000-8000-%012d", o)
		items := []events.LineItem{item()}
		if r.intn(2) == 0 {
			if it := item(); it.SKU != items[0].SKU {
				items = append(items, it)
			}
		}
		payloads := []events.Payload{events.OrderPlaced{Customer: events.Customer{ID: fmt.Sprintf("cus_%d", r.intn(50)), Name: events.Plain("Ada"),
			Email: events.Plain("ada@example.com")}, ShippingAddress: events.Plain(addr()), Currency: []string{"EUR", "GBP"}[r.intn(2)], Items: items}}
		for range r.intn(25) {
			var p events.Payload
			switch r.intn(10) {
			case 0, 1:
				p = events.OrderItemAdded{Item: item()}
			case 2:
				p = events.OrderItemRemoved{SKU: skus[r.intn(len(skus))]}
			case 3:
				p = events.ShippingAddressChanged{ShippingAddress: events.Plain(addr())}
			case 4:
				p = events.PaymentConfirmed{Amount: int64(r.intn(10000)), Currency: "EUR", Reference: fmt.Sprintf("pay_%d", r.intn(99))}
			case 5:
				parcels := []events.Parcel{{TrackingNumber: fmt.Sprintf("JD%06d", r.intn(999999))}}
				if r.intn(3) == 0 {
					parcels = append(parcels, events.Parcel{TrackingNumber: fmt.Sprintf("JD%06d", r.intn(999999))})
				}
				p = events.OrderShipped{Carrier: []string{"DHL", "UPS"}[r.intn(2)], Parcels: parcels}
			case 6:
				p = events.OrderDelivered{}
			case 7:
				p = events.OrderCancelled{Reason: events.Plain("reason " + strconv.Itoa(r.intn(9))), RefundDue: int64(r.intn(5000))}
			case 8:
				p = events.OrderItemAdded{Item: events.LineItem{SKU: "NEW-" + strconv.Itoa(r.intn(99)), Name: "new", Quantity: 1, UnitPrice: 1}}
			case 9:
				p = events.PersonalDataErased{ErasureID: fmt.Sprintf("e-%d", r.intn(9)), RequestedAt: base}
			}
			payloads = append(payloads, p)
		}
		var h []events.Envelope
		for i, p := range payloads {
			maxVersion := -1 // the latest: sealed (below)
			if r.intn(2) == 0 {
				maxVersion = 1 // as an older release wrote it, where it can say it
			}
			typ, sv, data, err := events.EncodeAt(p, maxVersion)
			if err != nil {
				sealed, serr := events.SealAt(p, 0, id, corpusKeys)
				if serr != nil {
					t.Fatal(serr)
				}
				typ, sv, data, err = events.Encode(sealed)
			}
			if err != nil {
				t.Fatal(err)
			}
			h = append(h, events.Envelope{OrderID: id, Version: int64(i + 1), Type: typ, SchemaVersion: sv, Data: data,
				OccurredAt: base.Add(time.Duration(o)*time.Hour + time.Duration(i)*time.Minute), RecordedAt: base})
		}
		out = append(out, h)
	}
	return out
}

// foldDigest folds every history of the corpus and digests the encoded state after each event.
func foldDigest(t *testing.T) string {
	t.Helper()
	h := sha256.New()
	for _, history := range corpus(t) {
		for i := range history {
			s, err := Fold(history[:i+1])
			if err != nil {
				t.Fatal(err)
			}
			b, err := EncodeState(s)
			if err != nil {
				t.Fatal(err)
			}
			h.Write(b)
			h.Write([]byte{'\n'})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestFoldDigest pins what the fold makes of a corpus of histories: snapshots hold folded states,
// and a release must not read a snapshot another fold took.
func TestFoldDigest(t *testing.T) {
	path := filepath.Join("testdata", "fold-digest.txt")
	got := foldDigest(t)
	raw, err := os.ReadFile(path)
	if err != nil && !(*update && os.IsNotExist(err)) {
		t.Fatalf("%v (record it with go test ./internal/order -run TestFoldDigest -update)", err)
	}
	recordedVersion, recorded, _ := strings.Cut(strings.TrimSpace(string(raw)), " ")
	sameVersion := recordedVersion == strconv.Itoa(FoldSchemaVersion)
	if *update {
		if sameVersion && recorded != got {
			t.Fatalf("the fold changed but FoldSchemaVersion is still %d: bump it in internal/order/snapshot.go first, "+
				"or this code would use the snapshots the running release takes", FoldSchemaVersion)
		}
		if err := os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", FoldSchemaVersion, got)), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !sameVersion {
		t.Fatalf("FoldSchemaVersion is %d but %s records the digest of version %s: record it with go test ./internal/order -run TestFoldDigest -update",
			FoldSchemaVersion, path, recordedVersion)
	}
	if recorded != got {
		t.Fatalf("Evolve, State or its JSON form now fold the corpus differently (digest %s, recorded %s for fold schema version %d). "+
			"Snapshots taken by the release running now would be misread by this code: bump order.FoldSchemaVersion in "+
			"internal/order/snapshot.go, then record the digest with go test ./internal/order -run TestFoldDigest -update",
			got, recorded, FoldSchemaVersion)
	}
}

// The corpus reads older schema versions, and folds the same facts to the same states at either version.
func TestCorpusHoldsBothSchemaVersions(t *testing.T) {
	seen := map[int]bool{}
	for _, h := range corpus(t) {
		for i, e := range h {
			if e.Type != events.TypeOrderShipped {
				continue
			}
			seen[e.SchemaVersion] = true
			p, err := events.DecodeEnvelope(e)
			if err != nil {
				t.Fatal(err)
			}
			_, _, data, err := events.Encode(p) // the same fact at the current version
			if err != nil {
				t.Fatal(err)
			}
			v2 := e
			v2.SchemaVersion, v2.Data = events.VersionOrderShipped, data
			a, errA := Fold(h[:i+1])
			b, errB := Fold(append(h[:i:i], v2))
			if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("folding OrderShipped v%d and v2 of the same fact differ: %+v, %v / %+v, %v", e.SchemaVersion, a, errA, b, errB)
			}
		}
	}
	if !seen[1] || !seen[2] {
		t.Errorf("the corpus holds OrderShipped at schema versions %v, want 1 and 2", seen)
	}
}

// Personal data folds plain from the versions that hold it so, sealed from those that seal it, and
// both show the same order.
func TestCorpusHoldsPlainAndSealedPersonalData(t *testing.T) {
	seen := map[int]bool{}
	for _, h := range corpus(t) {
		for i, e := range h {
			if e.Type != events.TypeOrderPlaced && e.Type != events.TypeShippingAddressChanged && e.Type != events.TypeOrderCancelled {
				continue
			}
			seen[e.SchemaVersion] = true
			p, err := events.DecodeEnvelope(e)
			if err != nil {
				t.Fatal(err)
			}
			if e.SchemaVersion == 1 { // the same fact sealed, as this release writes it
				sealed, err := events.SealAt(p, 0, e.OrderID, corpusKeys)
				if err != nil {
					t.Fatal(err)
				}
				_, sv, data, err := events.Encode(sealed)
				if err != nil {
					t.Fatal(err)
				}
				e.SchemaVersion, e.Data = sv, data
			} else if strings.Contains(string(e.Data), "Ada") {
				t.Fatalf("%s v%d holds plain text: %s", e.Type, e.SchemaVersion, e.Data)
			}
			a, errA := Fold(h[:i+1])
			b, errB := Fold(append(h[:i:i], e))
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			va, errA := a.View(corpusKeys)
			vb, errB := b.View(corpusKeys)
			if errA != nil || errB != nil || !reflect.DeepEqual(va, vb) {
				t.Fatalf("plain and sealed %s show differently: %+v, %v / %+v, %v", e.Type, va, errA, vb, errB)
			}
		}
	}
	if !seen[1] || !seen[2] {
		t.Errorf("the corpus holds personal data at schema versions %v, want 1 and 2", seen)
	}
}

func TestStateEncodingRoundTrips(t *testing.T) {
	n := 0
	for _, h := range corpus(t)[:50] {
		s, err := Fold(h)
		if err != nil {
			t.Fatal(err)
		}
		b, err := EncodeState(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeState(b)
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("DecodeState(EncodeState(%+v)) = %+v, %v", s, back, err)
		}
		n++
	}
	for _, bad := range []string{`{"id":"o","colour":"red"}`, `{"id":"o"} {}`, `{"id":`, `[]`, `{"version":"7"}`} {
		if s, err := DecodeState([]byte(bad)); err == nil {
			t.Errorf("DecodeState(%s) = %+v, nil; want an error", bad, s)
		}
	}
}

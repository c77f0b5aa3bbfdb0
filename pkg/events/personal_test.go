package events

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// testKeyring seals with one fixed AES-256-GCM key and a nonce derived from the associated data and
// the plaintext, so golden files are the same every run (a real Sealer draws its nonces at random:
// internal/pii). erased lists key ids that are gone.
type testKeyring struct {
	keyID  string
	aead   cipher.AEAD
	erased map[string]bool
}

var testKeys = newTestKeyring("0193a0b1-0000-7000-8000-00000000c0de")

func newTestKeyring(keyID string) *testKeyring {
	key := sha256.Sum256([]byte("the pkg/events golden files' data key"))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &testKeyring{keyID: keyID, aead: aead, erased: map[string]bool{}}
}

func (k *testKeyring) Seal(plaintext, aad []byte) (Sealed, error) {
	h := sha256.Sum256(append(append([]byte{}, aad...), plaintext...))
	nonce := h[:k.aead.NonceSize()]
	return Sealed{KeyID: k.keyID, Ciphertext: base64.StdEncoding.EncodeToString(k.aead.Seal(append([]byte{}, nonce...), nonce, plaintext, aad))}, nil
}

func (k *testKeyring) Open(s Sealed, aad []byte) ([]byte, error) {
	if s.KeyID != k.keyID || k.erased[s.KeyID] {
		return nil, ErrErased
	}
	raw, err := base64.StdEncoding.DecodeString(s.Ciphertext)
	if err != nil || len(raw) < k.aead.NonceSize() {
		return nil, errors.New("malformed ciphertext")
	}
	n := k.aead.NonceSize()
	return k.aead.Open(nil, raw[:n], raw[n:], aad)
}

// openAll returns p with every sealed personal field opened (absent when erased).
func openAll(t testing.TB, p Payload, orderID string, o Opener) Payload {
	t.Helper()
	text := func(v Personal[string], field string) Personal[string] {
		s, ok, err := Open(v, o, AssociatedData(orderID, field))
		if err != nil {
			t.Fatalf("open %s: %v", field, err)
		}
		if !ok {
			return Personal[string]{}
		}
		return Plain(s)
	}
	address := func(v Personal[Address]) Personal[Address] {
		a, ok, err := Open(v, o, AssociatedData(orderID, FieldShippingAddress))
		if err != nil {
			t.Fatalf("open address: %v", err)
		}
		if !ok {
			return Personal[Address]{}
		}
		return Plain(a)
	}
	switch x := p.(type) {
	case OrderPlaced:
		x.Customer.Name, x.Customer.Email = text(x.Customer.Name, FieldCustomerName), text(x.Customer.Email, FieldCustomerEmail)
		x.ShippingAddress = address(x.ShippingAddress)
		return x
	case ShippingAddressChanged:
		x.ShippingAddress = address(x.ShippingAddress)
		return x
	case OrderCancelled:
		x.Reason = text(x.Reason, FieldCancellationReason)
		return x
	}
	return p
}

func TestSealedDataHoldsNoPlainText(t *testing.T) {
	for _, p := range samples {
		_, _, data, err := Encode(sealedSample(t, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"Ada", "ada@example.com", "Analytical", "NW1 6XE", "customer asked"} {
			if strings.Contains(string(data), secret) {
				t.Errorf("%s data holds %q in plain text: %s", p.EventType(), secret, data)
			}
		}
	}
}

// A ciphertext is bound to its order and field: moved to another order or field it does not open.
func TestSealedFieldsAreBoundToOrderAndField(t *testing.T) {
	p := sealedSample(t, sample(t, TypeOrderPlaced)).(OrderPlaced)
	name, _ := p.Customer.Name.Sealed()
	if _, err := testKeys.Open(name, AssociatedData(goldenOrder, FieldCustomerName)); err != nil {
		t.Fatalf("open with its own order and field: %v", err)
	}
	for _, aad := range [][]byte{AssociatedData("01936f3e-0000-7000-8000-000000000002", FieldCustomerName),
		AssociatedData(goldenOrder, FieldCustomerEmail)} {
		if _, err := testKeys.Open(name, aad); err == nil {
			t.Errorf("the name opened with associated data %q", aad)
		}
	}
	// Swapped into the email field, Open fails loudly rather than erasing it.
	p.Customer.Email = p.Customer.Name
	if _, ok, err := Open(p.Customer.Email, testKeys, AssociatedData(goldenOrder, FieldCustomerEmail)); err == nil || ok {
		t.Errorf("Open(name sealed as email) = %v, %v; want an error", ok, err)
	}
}

func TestOpenAnErasedKey(t *testing.T) {
	keys := newTestKeyring("0193a0b1-0000-7000-8000-0000000e7a5e")
	p, err := SealAt(sample(t, TypeOrderCancelled), 0, goldenOrder, keys)
	if err != nil {
		t.Fatal(err)
	}
	keys.erased[keys.keyID] = true
	reason := p.(OrderCancelled).Reason
	if v, ok, err := Open(reason, keys, AssociatedData(goldenOrder, FieldCancellationReason)); ok || err != nil || v != "" {
		t.Errorf("Open(erased) = %q, %v, %v; want nothing and no error", v, ok, err)
	}
	if _, ok, err := Open(Personal[string]{}, keys, nil); ok || err != nil {
		t.Errorf("Open(absent) = %v, %v", ok, err)
	}
	if v, ok, err := Open(Plain("x"), nil, nil); !ok || err != nil || v != "x" {
		t.Errorf("Open(plain) = %q, %v, %v", v, ok, err)
	}
}

func TestPersonalJSON(t *testing.T) {
	sealed := sealedSample(t, sample(t, TypeOrderPlaced)).(OrderPlaced)
	for _, c := range []Customer{sample(t, TypeOrderPlaced).(OrderPlaced).Customer, sealed.Customer, {ID: "c"}} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back Customer
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c) {
			t.Errorf("round trip of %s = %v, %v", b, back, err)
		}
	}
	for _, bad := range []string{`{}`, `{"plain":"a","sealed":{"key_id":"k","ciphertext":"c"}}`, `{"plain":"a","x":1}`, `"a"`} {
		var p Personal[string]
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("Unmarshal(%s) = nil error", bad)
		}
	}
	// Printed by mistake, a value says nothing.
	if s := Plain("Ada Lovelace").String(); strings.Contains(s, "Ada") {
		t.Errorf("String() = %q", s)
	}
}

func TestShowData(t *testing.T) {
	_, sv, data, err := Encode(sealedSample(t, sample(t, TypeOrderPlaced)))
	if err != nil {
		t.Fatal(err)
	}
	shown, err := ShowData(TypeOrderPlaced, sv, data, goldenOrder, testKeys, false)
	if err != nil {
		t.Fatal(err)
	}
	_, _, v1, _ := EncodeAt(sample(t, TypeOrderPlaced), 1)
	if !sameJSON(shown, v1) {
		t.Errorf("ShowData(v2) = %s, want the plain data %s", shown, v1)
	}
	if plain, _ := ShowData(TypeOrderPlaced, 1, v1, goldenOrder, nil, false); !sameJSON(plain, v1) {
		t.Errorf("ShowData(v1) = %s, want it as stored", plain)
	}
	want := `{"customer":{"id":"cus_1042","name":null,"email":null},"shipping_address":null,"currency":"EUR",
		"items":[{"sku":"BK-001","name":"Notes on the Engine","quantity":2,"unit_price":1999},{"sku":"PN-7","name":"Pen","quantity":1,"unit_price":0}]}`
	for _, c := range []struct {
		sv     int
		data   []byte
		o      Opener
		erased bool
	}{{sv, data, &testKeyring{keyID: "another"}, false}, {sv, data, testKeys, true}, {1, v1, nil, true}} {
		got, err := ShowData(TypeOrderPlaced, c.sv, c.data, goldenOrder, c.o, c.erased)
		if err != nil || !sameJSON(got, []byte(want)) {
			t.Errorf("ShowData(v%d, erased %v) = %s, %v; want %s", c.sv, c.erased, got, err, want)
		}
	}
	if got, _ := ShowData(TypePaymentConfirmed, 1, []byte(`{"amount":1}`), goldenOrder, nil, true); string(got) != `{"amount":1}` {
		t.Errorf("ShowData(PaymentConfirmed) = %s, want it as stored", got)
	}
	sealed, err := SealedIn(TypeOrderPlaced, sv, data)
	if err != nil || len(sealed) != 3 || sealed[0].KeyID != testKeys.keyID {
		t.Errorf("SealedIn(OrderPlaced v2) = %v, %v; want its 3 sealed fields", sealed, err)
	}
	if sealed, err := SealedIn(TypeOrderPlaced, 1, v1); err != nil || len(sealed) != 0 {
		t.Errorf("SealedIn(OrderPlaced v1) = %v, %v; want none", sealed, err)
	}
}

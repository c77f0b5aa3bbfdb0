package publicevents

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

const asyncAPIPath = "../../docs/asyncapi.yaml"

// asyncAPI reads docs/asyncapi.yaml as a JSON document.
func asyncAPI(t *testing.T) map[string]any {
	t.Helper()
	src, err := os.ReadFile(asyncAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("%s: %v", asyncAPIPath, err)
	}
	return doc
}

// schemas compiles the document's component schemas, by name, to validate records against.
func schemas(t *testing.T, doc map[string]any) func(name string) *jsonschema.Schema {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const url = "file:///docs/asyncapi.json"
	if err := c.AddResource(url, inst); err != nil {
		t.Fatal(err)
	}
	return func(name string) *jsonschema.Schema {
		t.Helper()
		s, err := c.Compile(url + "#/components/schemas/" + name)
		if err != nil {
			t.Fatalf("compile the schema %s of docs/asyncapi.yaml: %v", name, err)
		}
		return s
	}
}

func field(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

func readJSON(t *testing.T, path string) any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestAsyncAPIDocumentsBothTopics: docs/asyncapi.yaml is an AsyncAPI 3 document with a channel for each
// topic and an operation sending on each, and each public message's payload is the schema its type
// names.
func TestAsyncAPIDocumentsBothTopics(t *testing.T) {
	doc := asyncAPI(t)
	if v, _ := doc["asyncapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("asyncapi: %q, want an AsyncAPI 3 document", v)
	}
	channels, _ := doc["channels"].(map[string]any)
	byAddress := map[string]string{}
	for name, ch := range channels {
		if addr, _ := field(ch, "address").(string); addr != "" {
			byAddress[addr] = name
		}
	}
	for _, topic := range []string{"orders.events", Topic} {
		if byAddress[topic] == "" {
			t.Errorf("docs/asyncapi.yaml has no channel with address %s (channels: %v)", topic, byAddress)
		}
	}
	sent := map[string]bool{}
	for _, op := range field(doc, "operations").(map[string]any) {
		ref, _ := field(op, "channel", "$ref").(string)
		if field(op, "action") == "send" {
			sent[strings.TrimPrefix(ref, "#/channels/")] = true
		}
	}
	for topic, ch := range byAddress {
		if !sent[ch] {
			t.Errorf("no operation sends on %s", topic)
		}
	}
	public, _ := field(channels[byAddress[Topic]], "messages").(map[string]any)
	var names []string
	for _, m := range public {
		ref, _ := field(m, "$ref").(string)
		msg := field(doc, "components", "messages", strings.TrimPrefix(ref, "#/components/messages/"))
		name, _ := field(msg, "name").(string)
		names = append(names, name)
		if payload, _ := field(msg, "payload", "$ref").(string); payload != "#/components/schemas/Public"+name {
			t.Errorf("message %s has the payload %q, want #/components/schemas/Public%s", name, payload, name)
		}
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(Types))
	if !slices.Equal(names, want) {
		t.Errorf("the public channel's messages are %v, want %v", names, want)
	}
}

// TestGoldenRecordsValidateAgainstAsyncAPI: every golden public record validates against the schema of
// its type in docs/asyncapi.yaml, and not against another type's; every internal golden event against
// the internal envelope. Records the schema must refuse are refused.
func TestGoldenRecordsValidateAgainstAsyncAPI(t *testing.T) {
	schema := schemas(t, asyncAPI(t))
	for _, typ := range Types {
		rec := readJSON(t, goldenPath(typ))
		if err := schema("Public" + typ).Validate(rec); err != nil {
			t.Errorf("testdata/%s.json does not validate against Public%s: %v", typ, typ, err)
		}
		for _, other := range Types {
			if other != typ && schema("Public"+other).Validate(rec) == nil {
				t.Errorf("testdata/%s.json validates against Public%s too: the schemas do not tell the types apart", typ, other)
			}
		}
	}
	// What a consumer must never see: personal data in a record, a missing id, another schema version.
	placed := readJSON(t, goldenPath(TypeOrderPlaced)).(map[string]any)
	bad := []func(m map[string]any){
		func(m map[string]any) { m["data"].(map[string]any)["customer_email"] = "ada@example.com" },
		func(m map[string]any) { delete(m, "event_id") },
		func(m map[string]any) { m["schema_version"] = json.Number("2") },
		func(m map[string]any) { m["order_id"] = "not-a-uuid" },
	}
	for i, mutate := range bad {
		m := deepCopy(t, placed)
		mutate(m)
		if schema("PublicOrderPlaced").Validate(m) == nil {
			t.Errorf("bad record %d validates against PublicOrderPlaced: %v", i, m)
		}
	}
	paths, _ := filepath.Glob(filepath.Join("..", "events", "testdata", "*.json"))
	for _, p := range paths {
		if err := schema("InternalEnvelope").Validate(readJSON(t, p)); err != nil {
			t.Errorf("%s does not validate against InternalEnvelope: %v", p, err)
		}
	}
	sealed := field(readJSON(t, filepath.Join("..", "events", "testdata", "OrderPlaced.v2.json")), "data", "customer", "name")
	if err := schema("Sealed").Validate(sealed); err != nil {
		t.Errorf("a sealed field of OrderPlaced v2 does not validate against Sealed: %v", err)
	}
}

func deepCopy(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]any)
}

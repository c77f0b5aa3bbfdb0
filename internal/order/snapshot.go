package order

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// FoldSchemaVersion is the version of the fold: of what Evolve makes of a history (through the
// upcasters of pkg/events) and of State's JSON form (EncodeState). A snapshot records the version
// that took it, and a snapshot of another version is never used: the order is folded from its events
// instead. Any change to Evolve's results, to State or to its encoding needs a new version;
// TestFoldDigest fails until it gets one.
const FoldSchemaVersion = 2

// EncodeState is the JSON form of a state that snapshots store.
func EncodeState(s State) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode state of order %s: %w", s.ID, err)
	}
	return b, nil
}

// DecodeState reads a state EncodeState wrote. It refuses fields State does not have and data after
// the value, so that a snapshot of another shape is not half-read.
func DecodeState(data []byte) (State, error) {
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return State{}, fmt.Errorf("decode state: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return State{}, errors.New("decode state: data after the value")
	}
	return s, nil
}

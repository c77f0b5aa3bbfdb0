package httpserver

import "testing"

func TestParseInteger(t *testing.T) {
	for s, want := range map[string]int64{"20": 20, "20.0": 20, "2e1": 20, "+5": 5, "-3": -3, "1.0e2": 100} {
		if got, ok := ParseInteger(s); !ok || got != want {
			t.Errorf("ParseInteger(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "2.5", "0x10", "1_000", "NaN", "Inf", "9223372036854775808", "1e19", " 5", "five"} {
		if got, ok := ParseInteger(s); ok {
			t.Errorf("ParseInteger(%q) = %d, true; want a refusal", s, got)
		}
	}
}

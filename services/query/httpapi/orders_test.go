package httpapi

import "testing"

func TestNoneMatch(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{``, false},
		{`"3"`, true},
		{`W/"3"`, true},
		{` "1" , "3" `, true},
		{`*`, true},
		{`"2"`, false},
		{`3`, false},
		{`"33"`, false},
	}
	for _, tt := range tests {
		if got := noneMatch(tt.header, etag(3)); got != tt.want {
			t.Errorf("noneMatch(%q, %s) = %v, want %v", tt.header, etag(3), got, tt.want)
		}
	}
}

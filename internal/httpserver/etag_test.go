package httpserver

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
		if got := NoneMatch(tt.header, ETag(3)); got != tt.want {
			t.Errorf("NoneMatch(%q, %s) = %v, want %v", tt.header, ETag(3), got, tt.want)
		}
	}
}

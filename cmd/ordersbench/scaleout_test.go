package main

import (
	"slices"
	"testing"
)

func TestGroupReady(t *testing.T) {
	tests := []struct {
		name     string
		state    string
		assigned [][]int32
		k        int
		want     bool
	}{
		{"one member holds all six", "Stable", [][]int32{{0, 1, 2, 3, 4, 5}}, 1, true},
		{"three members, two each", "Stable", [][]int32{{0, 3}, {1, 4}, {2, 5}}, 3, true},
		{"seven members, one idle", "Stable", [][]int32{{0}, {1}, {2}, {3}, {4}, {5}, nil}, 7, true},
		{"still rebalancing", "CompletingRebalance", [][]int32{{0, 3}, {1, 4}, {2, 5}}, 3, false},
		{"a member has not joined yet", "Stable", [][]int32{{0, 1, 2}, {3, 4, 5}}, 3, false},
		{"a partition withheld (first phase of a cooperative rebalance)", "Stable", [][]int32{{0, 3}, {1, 4}, {2}}, 3, false},
		{"a partition held twice", "Stable", [][]int32{{0, 3}, {1, 4}, {2, 5, 3}}, 3, false},
		{"a member without partitions while others hold two", "Stable", [][]int32{{0, 1, 2}, {3, 4, 5}, nil}, 3, false},
		{"a partition the topic does not have", "Stable", [][]int32{{0, 1, 2}, {3, 4, 6}}, 2, false},
	}
	for _, tt := range tests {
		if got := groupReady(tt.state, tt.assigned, 6, tt.k); got != tt.want {
			t.Errorf("%s: groupReady(%q, %v, 6, %d) = %v, want %v", tt.name, tt.state, tt.assigned, tt.k, got, tt.want)
		}
	}
}

func TestRotate(t *testing.T) {
	xs := []int{1, 2, 3}
	for n, want := range [][]int{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}, {1, 2, 3}} {
		if got := rotate(xs, n); !slices.Equal(got, want) {
			t.Errorf("rotate(%v, %d) = %v, want %v", xs, n, got, want)
		}
	}
	if !slices.Equal(xs, []int{1, 2, 3}) {
		t.Errorf("rotate changed its input: %v", xs)
	}
}

func TestParseMembers(t *testing.T) {
	got, err := parseMembers("1, 2,3")
	if err != nil || !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf(`parseMembers("1, 2,3") = %v, %v; want [1 2 3]`, got, err)
	}
	for _, bad := range []string{"", "0", "1,x", "2,2", "-1"} {
		if got, err := parseMembers(bad); err == nil {
			t.Errorf("parseMembers(%q) = %v, want an error", bad, got)
		}
	}
}

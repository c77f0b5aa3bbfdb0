package projection

import "testing"

func TestClassify(t *testing.T) {
	cases := []struct {
		applied, version int64
		want             Step
	}{
		{0, 1, StepApply},
		{0, 2, StepGap},
		{3, 4, StepApply},
		{3, 3, StepDuplicate},
		{3, 1, StepDuplicate},
		{3, 5, StepGap},
	}
	for _, c := range cases {
		if got := Classify(c.applied, c.version); got != c.want {
			t.Errorf("Classify(%d, %d) = %d, want %d", c.applied, c.version, got, c.want)
		}
	}
}

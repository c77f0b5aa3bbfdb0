package testenv

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Metric reads one unlabelled sample (`name value`) from a Prometheus text endpoint; ok is false
// when the endpoint does not answer or has no such sample.
func Metric(url, name string) (value float64, ok bool) {
	c := &http.Client{Timeout: 2 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), name+" "); found {
			if _, err := fmt.Sscanf(rest, "%g", &value); err == nil {
				return value, true
			}
		}
	}
	return 0, false
}

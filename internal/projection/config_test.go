package projection

import (
	"os"
	"testing"

	"github.com/orders-oss/orders/internal/envconfig"
)

func TestReadConfigInstanceID(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct{ env, want string }{
		{"", host},         // static, named after the host
		{"pod-7", "pod-7"}, // static, named explicitly
		{"none", ""},       // dynamic membership, for comparisons
		{"  none  ", ""},   // as envconfig trims
		{"None", "None"},   // only the exact word turns it off
		{"nonesuch", "nonesuch"},
	} {
		env := map[string]string{"KAFKA_BROKERS": "127.0.0.1:9092", "PROJECTOR_INSTANCE_ID": tc.env}
		r := envconfig.New(func(k string) string { return env[k] })
		c := ReadConfig(r, "projector-orders")
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		if c.InstanceID != tc.want {
			t.Errorf("PROJECTOR_INSTANCE_ID=%q: InstanceID = %q, want %q", tc.env, c.InstanceID, tc.want)
		}
	}
}

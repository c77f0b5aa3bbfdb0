package telemetry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orders-oss/orders/internal/buildinfo"
)

// RegisterRuntime adds what every service reports to reg: orders_build_info (1, labelled with the
// service, version, commit and Go version), the Go runtime's metrics (go_*) and the process's
// (process_*: CPU, memory, open files). A collector reg already has is left as it is.
func RegisterRuntime(reg prometheus.Registerer, service string) error {
	info := buildinfo.Read()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "orders_build_info",
		Help:        "The running build: always 1, labelled with the service, version, commit and Go version.",
		ConstLabels: prometheus.Labels{"service": service, "version": info.Version, "commit": info.Commit, "go_version": info.GoVersion}})
	build.Set(1)
	for _, c := range []prometheus.Collector{build, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return err
		}
	}
	return nil
}

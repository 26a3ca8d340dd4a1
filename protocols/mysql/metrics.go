package mysql

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-gw/sluice/protocols"
)

// Metrics are the MySQL protocol's series: the shared session series with
// protocol="mysql", so dashboards work across protocols.
type Metrics = protocols.SessionMetrics

// NewMetrics registers the series of one side ("gateway" or "agent") on reg.
// A nil reg gives working but unregistered metrics.
func NewMetrics(reg prometheus.Registerer, side string) *Metrics {
	return protocols.NewSessionMetrics(reg, Name, side)
}

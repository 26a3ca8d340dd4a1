package memtun_test

import (
	"testing"

	"github.com/sluice-gw/sluice/transport"
	"github.com/sluice-gw/sluice/transport/memtun"
	"github.com/sluice-gw/sluice/transport/tunneltest"
)

func TestConformance(t *testing.T) {
	tunneltest.Run(t, func(t *testing.T, o tunneltest.Options) (transport.Tunnel, transport.Tunnel) {
		gw, ag := memtun.PairWith(memtun.Options{Filter: o.Filter})
		t.Cleanup(func() { gw.Close() })
		return gw, ag
	})
}

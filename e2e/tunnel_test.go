package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestTunnelTransport proves which transport the suite ran over.
func TestTunnelTransport(t *testing.T) {
	got := fmt.Sprintf("%T", E.gw.Hub.Tunnel("demo-agent"))
	want := "grpctun"
	if os.Getenv("SLUICE_E2E_TUNNEL") == "quic" {
		want = "quictun"
	}
	if !strings.Contains(got, want) {
		t.Fatalf("demo-agent's tunnel is %s, want a %s tunnel", got, want)
	}
}

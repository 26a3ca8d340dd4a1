package quictun

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine of a tunnel, server and quic-go connection ends with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package recording_test

import (
	"testing"

	"github.com/sluice-gw/sluice/control/recording"
	"github.com/sluice-gw/sluice/control/recording/manifesttest"
)

func TestMemoryManifestConformance(t *testing.T) {
	manifesttest.Run(t, func(*testing.T) recording.Manifest { return &recording.MemoryManifest{} })
}

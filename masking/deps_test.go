package masking

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly: masking depends on the standard library alone
// (internal/archtest separately checks it imports nothing of ours).
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/sluice-gw/sluice/masking" {
			t.Errorf("masking depends on %s", p)
		}
	}
}

package postgres

import (
	"strings"
	"testing"
)

func TestResolveTarget(t *testing.T) {
	t.Setenv("SLUICE_T_PW", "s3cret")
	t.Setenv("SLUICE_T_URL", "postgres://u:p@db:5432/app")
	cases := []struct{ in, want, err string }{
		{"postgres://app:${SLUICE_T_PW}@db/app", "postgres://app:s3cret@db/app", ""},
		{"env:SLUICE_T_URL", "postgres://u:p@db:5432/app", ""},
		{"postgres://app:pa$$word@db/app", "postgres://app:pa$$word@db/app", ""}, // a bare $ is a literal
		{"postgres://app:${SLUICE_T_MISSING}@db/app", "", "SLUICE_T_MISSING"},
		{"env:SLUICE_T_MISSING", "", "SLUICE_T_MISSING"},
	}
	for _, c := range cases {
		got, err := ResolveTarget(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: got %q, %v; want an error naming %s", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

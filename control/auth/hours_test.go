package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseHoursValid(t *testing.T) {
	for _, tc := range []struct{ in, canon string }{
		{"", ""},
		{"   ", ""},
		{"Mon-Fri 08:00-18:00 UTC", "Mon-Fri 08:00-18:00 UTC"},
		{"sat,SUN 10:00-12:00 Europe/Berlin", "Sat,Sun 10:00-12:00 Europe/Berlin"},
		{"  Mon   00:00-24:00   UTC ", "Mon 00:00-24:00 UTC"},
		{"Mon,Wed-Fri 22:00-06:00 America/New_York", "Mon,Wed-Fri 22:00-06:00 America/New_York"},
		{"Fri-Mon 09:00-17:30 UTC", "Fri-Mon 09:00-17:30 UTC"},
		{"Mon 22:00-00:00 UTC", "Mon 22:00-24:00 UTC"},
		{"Mon-Fri 08:00-12:00 UTC;Mon-Fri 13:00-17:00 UTC", "Mon-Fri 08:00-12:00 UTC; Mon-Fri 13:00-17:00 UTC"},
	} {
		h, err := ParseHours(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if h.String() != tc.canon {
			t.Errorf("%q: canonical %q, want %q", tc.in, h.String(), tc.canon)
		}
		if h.Always() != (tc.canon == "") {
			t.Errorf("%q: Always() = %v", tc.in, h.Always())
		}
	}
}

func TestParseHoursInvalid(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Mon-Fri", `want "DAYS HH:MM-HH:MM ZONE"`},
		{"Mon-Fri 08:00-18:00", `want "DAYS`},
		{"Mon-Fri 08:00-18:00 UTC extra", `want "DAYS`},
		{"Monday 08:00-18:00 UTC", `day "Monday"`},
		{"Mon-Xyz 08:00-18:00 UTC", `day "Xyz"`},
		{"Mon,,Tue 08:00-18:00 UTC", `day ""`},
		{"Mon-Mon 08:00-18:00 UTC", "use a single day"},
		{"Mon,Mon 08:00-18:00 UTC", "Mon listed twice"},
		{"Mon-Fri,Wed 08:00-18:00 UTC", "Wed listed twice"},
		{"Mon 8:00-18:00 UTC", `time "8:00"`},
		{"Mon 08:00-18:60 UTC", `time "18:60"`},
		{"Mon 24:00-18:00 UTC", `time "24:00"`},
		{"Mon 08:00-24:01 UTC", `time "24:01"`},
		{"Mon 25:00-26:00 UTC", `time "25:00"`},
		{"Mon 08:00+18:00 UTC", "want HH:MM-HH:MM"},
		{"Mon 08:00-08:00 UTC", "is empty"},
		{"Mon 00:00-00:00 UTC", "is empty"},
		{"Mon 0a:00-18:00 UTC", `time "0a:00"`},
		{"Mon 08:00-18:00 Local", `zone "Local"`},
		{"Mon 08:00-18:00 Mars/Olympus", `zone "Mars/Olympus": unknown`},
		{"Mon 08:00-18:00 ../../etc/passwd", "unknown"},
		{"Mon 08:00-18:00 UTC;", `clause 2 ""`},
		{"Mon 08:00-18:00 UTC; Tue 08:00", `clause 2 "Tue 08:00"`},
		{strings.Repeat("Mon 08:00-18:00 UTC;", 40), "longer than"},
		{strings.Repeat(";", 20), "more than 16 clauses"},
	} {
		_, err := ParseHours(tc.in)
		if err == nil {
			t.Errorf("%q: accepted", tc.in)
			continue
		}
		if !errors.Is(err, ErrBadHours) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want one containing %q", tc.in, err, tc.want)
		}
		if ValidateHours(tc.in) == nil {
			t.Errorf("%q: ValidateHours accepts it", tc.in)
		}
	}
}

func mustHours(t *testing.T, spec string) Hours {
	t.Helper()
	h, err := ParseHours(spec)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHoursContains(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	utc := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	// 2025-06-02 is a Monday.
	for _, tc := range []struct {
		spec string
		at   time.Time
		in   bool
	}{
		{"", utc("2025-06-01 03:00"), true},
		{"Mon-Fri 08:00-18:00 UTC", utc("2025-06-02 08:00"), true}, // start inclusive
		{"Mon-Fri 08:00-18:00 UTC", utc("2025-06-02 17:59"), true},
		{"Mon-Fri 08:00-18:00 UTC", utc("2025-06-02 18:00"), false}, // end exclusive
		{"Mon-Fri 08:00-18:00 UTC", utc("2025-06-02 07:59"), false},
		{"Mon-Fri 08:00-18:00 UTC", utc("2025-06-07 12:00"), false}, // Saturday
		{"Mon-Fri 08:00-18:00 UTC", utc("2025-06-06 12:00"), true},  // Friday
		// Zone: 08:00 Berlin is 06:00 UTC in summer.
		{"Mon 08:00-18:00 Europe/Berlin", utc("2025-06-02 06:00"), true},
		{"Mon 08:00-18:00 Europe/Berlin", utc("2025-06-02 05:59"), false},
		{"Mon 08:00-18:00 Europe/Berlin", utc("2025-06-02 16:00"), false},
		// The weekday is Berlin's: Sunday 23:30 UTC is Monday 01:30 in Berlin.
		{"Mon 00:00-02:00 Europe/Berlin", utc("2025-06-01 23:30"), true},
		// Overnight: Friday 22:00 to Saturday 06:00 belongs to Friday.
		{"Fri 22:00-06:00 UTC", utc("2025-06-07 05:00"), true},
		{"Fri 22:00-06:00 UTC", utc("2025-06-06 23:00"), true},
		{"Fri 22:00-06:00 UTC", utc("2025-06-06 05:00"), false}, // Friday morning belongs to Thursday's window
		{"Fri 22:00-06:00 UTC", utc("2025-06-07 06:00"), false},
		// Wrapping day range.
		{"Fri-Mon 09:00-17:00 UTC", utc("2025-06-08 10:00"), true},  // Sunday
		{"Fri-Mon 09:00-17:00 UTC", utc("2025-06-03 10:00"), false}, // Tuesday
		// Several clauses.
		{"Mon 08:00-12:00 UTC; Mon 13:00-17:00 UTC", utc("2025-06-02 12:30"), false},
		{"Mon 08:00-12:00 UTC; Mon 13:00-17:00 UTC", utc("2025-06-02 13:30"), true},
	} {
		if got := mustHours(t, tc.spec).Contains(tc.at); got != tc.in {
			t.Errorf("%q at %v: Contains = %v, want %v", tc.spec, tc.at, got, tc.in)
		}
		// The instant, not its representation, decides.
		if got := mustHours(t, tc.spec).Contains(tc.at.In(berlin)); got != tc.in {
			t.Errorf("%q at %v in Berlin: Contains = %v", tc.spec, tc.at, got)
		}
	}
}

func TestHoursDST(t *testing.T) {
	// 2025-03-30 02:00 Berlin clocks jump to 03:00 (a Sunday). A window of
	// wall time 01:00-04:00 is two real hours long that day.
	h := mustHours(t, "Sun 01:00-04:00 Europe/Berlin")
	start := time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC) // 01:00 CET
	if !h.Contains(start) || !h.Contains(start.Add(119*time.Minute)) || h.Contains(start.Add(2*time.Hour)) {
		t.Fatal("DST spring-forward window")
	}
	end, ok := h.End(start)
	if !ok || !end.Equal(start.Add(2*time.Hour)) {
		t.Fatalf("end %v %v", end, ok)
	}
}

func TestHoursEnd(t *testing.T) {
	mon := time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC) // Monday
	for _, tc := range []struct {
		spec string
		at   time.Time
		end  time.Time // zero: not ok
	}{
		{"", mon, time.Time{}},
		{"Mon-Fri 08:00-18:00 UTC", mon, time.Date(2025, 6, 2, 18, 0, 0, 0, time.UTC)},
		{"Mon-Fri 08:00-18:00 UTC", mon.Add(-3 * time.Hour), time.Time{}}, // outside
		// Adjacent windows chain: Monday 00:00-24:00 then Tuesday.
		{"Mon-Tue 00:00-24:00 UTC", mon, time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)},
		// Overlapping clauses: the later end wins.
		{"Mon 08:00-12:00 UTC; Mon 09:00-15:00 UTC", mon, time.Date(2025, 6, 2, 15, 0, 0, 0, time.UTC)},
		// Overnight chained into the next window.
		{"Mon 20:00-02:00 UTC; Tue 02:00-03:00 UTC", mon.Add(11 * time.Hour), time.Date(2025, 6, 3, 3, 0, 0, 0, time.UTC)},
		// The whole week never ends.
		{"Mon-Sun 00:00-24:00 UTC", mon, time.Time{}},
	} {
		end, ok := mustHours(t, tc.spec).End(tc.at)
		if ok != !tc.end.IsZero() || ok && !end.Equal(tc.end) {
			t.Errorf("%q at %v: End = %v %v, want %v", tc.spec, tc.at, end, ok, tc.end)
		}
	}
}

func FuzzParseHours(f *testing.F) {
	for _, s := range []string{"", "Mon-Fri 08:00-18:00 UTC", "Sat,Sun 10:00-12:00 Europe/Berlin",
		"Fri-Mon 22:00-06:00 America/New_York; Tue 00:00-24:00 UTC", "mon 08:00-08:00 UTC", "Mon 24:00-01:00 UTC", ";;"} {
		f.Add(s)
	}
	times := []time.Time{
		time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC),
		time.Date(2025, 3, 30, 1, 30, 0, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC),
	}
	f.Fuzz(func(t *testing.T, spec string) {
		h, err := ParseHours(spec)
		if err != nil {
			if !errors.Is(err, ErrBadHours) {
				t.Fatalf("error does not wrap ErrBadHours: %v", err)
			}
			return
		}
		// The canonical form parses to the same hours and is a fixed point.
		h2, err := ParseHours(h.String())
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", h.String(), spec, err)
		}
		if h2.String() != h.String() {
			t.Fatalf("canonical form not stable: %q then %q", h.String(), h2.String())
		}
		for _, at := range times {
			if h.Contains(at) != h2.Contains(at) {
				t.Fatalf("%q and its canonical form disagree at %v", spec, at)
			}
			end, ok := h.End(at)
			if ok && (!h.Contains(at) || !end.After(at) || h.Contains(end)) {
				t.Fatalf("%q at %v: End %v inconsistent with Contains", spec, at, end)
			}
		}
	})
}

package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zone names resolve the same on every host, with or without /usr/share/zoneinfo
)

// Hours is a parsed access-rule hours spec: the weekly windows in which a
// rule applies. The zero Hours (spec "") means always. Hours is immutable
// and safe for concurrent use.
//
// Syntax (docs/access.md has examples):
//
//	hours  = "" | clause { ";" clause }
//	clause = days " " from "-" to " " zone        (fields separated by blanks)
//	days   = item { "," item }                    e.g. "Mon-Fri", "Sat,Sun", "Mon,Wed-Fri"
//	item   = day | day "-" day                    a range may wrap: "Fri-Mon" = Fri,Sat,Sun,Mon
//	day    = "Mon" | "Tue" | "Wed" | "Thu" | "Fri" | "Sat" | "Sun"   (any case)
//	from   = HH:MM, 00:00 to 23:59
//	to     = HH:MM, 00:00 to 24:00; 00:00 means midnight at the end of the day;
//	         to earlier than from runs past midnight into the next day
//	zone   = "UTC" or an IANA zone name such as "Europe/Berlin" ("Local" is refused)
//
// A window starts on each listed day at from (wall time in zone) and ends at
// to, on the same day or, when to is earlier than from, on the next one: "Mon-Fri
// 22:00-06:00 UTC" covers Monday 22:00 to Tuesday 06:00, …, Friday 22:00 to
// Saturday 06:00. from is inclusive, to exclusive. from == to is an error
// (use 00:00-24:00 for a whole day). A day may appear once per clause.
type Hours struct {
	clauses []clause
}

type clause struct {
	days     [7]bool // by time.Weekday
	dayItems []string
	from, to int // minutes after midnight; to in (0, 1440]
	loc      *time.Location
}

// Limits of a spec, so that a hostile one costs nothing.
const (
	maxHoursLen     = 512
	maxHoursClauses = 16
)

var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// ErrBadHours is wrapped by every ParseHours error.
var ErrBadHours = errors.New("invalid hours")

// ParseHours parses an hours spec strictly (see Hours). The error names the
// part it rejects.
func ParseHours(spec string) (Hours, error) {
	if strings.TrimSpace(spec) == "" {
		return Hours{}, nil
	}
	if len(spec) > maxHoursLen {
		return Hours{}, fmt.Errorf("%w: longer than %d bytes", ErrBadHours, maxHoursLen)
	}
	parts := strings.Split(spec, ";")
	if len(parts) > maxHoursClauses {
		return Hours{}, fmt.Errorf("%w: more than %d clauses", ErrBadHours, maxHoursClauses)
	}
	var h Hours
	for i, p := range parts {
		c, err := parseClause(p)
		if err != nil {
			if len(parts) > 1 {
				return Hours{}, fmt.Errorf("%w: clause %d %q: %v", ErrBadHours, i+1, strings.TrimSpace(p), err)
			}
			return Hours{}, fmt.Errorf("%w %q: %v", ErrBadHours, strings.TrimSpace(p), err)
		}
		h.clauses = append(h.clauses, c)
	}
	return h, nil
}

// ValidateHours reports whether spec parses (for input validation).
func ValidateHours(spec string) error {
	_, err := ParseHours(spec)
	return err
}

func parseClause(s string) (clause, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return clause{}, errors.New(`want "DAYS HH:MM-HH:MM ZONE", e.g. "Mon-Fri 08:00-18:00 UTC"`)
	}
	var c clause
	if err := c.parseDays(f[0]); err != nil {
		return clause{}, err
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return clause{}, fmt.Errorf("time range %q: want HH:MM-HH:MM", f[1])
	}
	var err error
	if c.from, err = parseClock(from, false); err != nil {
		return clause{}, err
	}
	if c.to, err = parseClock(to, true); err != nil {
		return clause{}, err
	}
	if c.from == c.to {
		return clause{}, fmt.Errorf("time range %q is empty (use 00:00-24:00 for a whole day)", f[1])
	}
	if c.to == 0 { // "22:00-00:00" ends at midnight, like "22:00-24:00"
		c.to = 24 * 60
	}
	if c.loc, err = parseZone(f[2]); err != nil {
		return clause{}, err
	}
	return c, nil
}

func (c *clause) parseDays(s string) error {
	for item := range strings.SplitSeq(s, ",") {
		a, b, isRange := strings.Cut(item, "-")
		from, ok := parseDay(a)
		if !ok {
			return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", a)
		}
		to := from
		if isRange {
			if to, ok = parseDay(b); !ok {
				return fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun", b)
			}
			if to == from {
				return fmt.Errorf("day range %q: use a single day", item)
			}
		}
		for d := from; ; d = (d + 1) % 7 {
			if c.days[d] {
				return fmt.Errorf("day %s listed twice", dayNames[d])
			}
			c.days[d] = true
			if d == to {
				break
			}
		}
		canon := dayNames[from]
		if isRange {
			canon += "-" + dayNames[to]
		}
		c.dayItems = append(c.dayItems, canon)
	}
	return nil
}

func parseDay(s string) (int, bool) {
	for i, n := range dayNames {
		if strings.EqualFold(s, n) {
			return i, true
		}
	}
	return 0, false
}

// parseClock parses HH:MM into minutes after midnight; 24:00 only as an end.
func parseClock(s string, end bool) (int, error) {
	bad := fmt.Errorf("time %q: want HH:MM (00:00 to 23:59, or 24:00 as an end)", s)
	if len(s) != 5 || s[2] != ':' {
		return 0, bad
	}
	digit := func(b byte) (int, bool) { return int(b - '0'), b >= '0' && b <= '9' }
	h1, ok1 := digit(s[0])
	h2, ok2 := digit(s[1])
	m1, ok3 := digit(s[3])
	m2, ok4 := digit(s[4])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, bad
	}
	h, m := h1*10+h2, m1*10+m2
	switch {
	case m > 59, h > 24, h == 24 && (m != 0 || !end):
		return 0, bad
	}
	return h*60 + m, nil
}

func parseZone(s string) (*time.Location, error) {
	if s == "Local" || s == "" {
		return nil, fmt.Errorf("zone %q: name a zone explicitly, e.g. UTC or Europe/Berlin", s)
	}
	loc, err := time.LoadLocation(s)
	if err != nil {
		return nil, fmt.Errorf("zone %q: unknown (want UTC or an IANA name such as Europe/Berlin)", s)
	}
	return loc, nil
}

// Always reports whether h places no restriction (the spec was "").
func (h Hours) Always() bool { return len(h.clauses) == 0 }

// String returns the canonical spec: days capitalised, clauses joined by
// "; ". ParseHours(h.String()) is equivalent to h.
func (h Hours) String() string {
	var b strings.Builder
	for i, c := range h.clauses {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %02d:%02d-%02d:%02d %s", strings.Join(c.dayItems, ","),
			c.from/60, c.from%60, c.to/60, c.to%60, c.loc.String())
	}
	return b.String()
}

// Contains reports whether t falls inside one of h's windows (always true
// for the zero Hours).
func (h Hours) Contains(t time.Time) bool {
	if h.Always() {
		return true
	}
	for _, c := range h.clauses {
		if _, ok := c.window(t); ok {
			return true
		}
	}
	return false
}

// window returns the end of c's window that contains t.
func (c clause) window(t time.Time) (time.Time, bool) {
	lt := t.In(c.loc)
	y, m, d := lt.Date()
	// A window containing t started today or, running past midnight, yesterday.
	for _, back := range [2]int{0, 1} {
		start := time.Date(y, m, d-back, c.from/60, c.from%60, 0, 0, c.loc)
		if !c.days[start.Weekday()] {
			continue
		}
		endDay := d - back
		if c.to <= c.from {
			endDay++
		}
		end := time.Date(y, m, endDay, c.to/60, c.to%60, 0, 0, c.loc)
		if !t.Before(start) && t.Before(end) {
			return end, true
		}
	}
	return time.Time{}, false
}

// End returns when the allowed period containing t ends: the end of t's
// window, followed through windows that continue it without a gap (so
// "Mon-Fri 00:00-24:00" admitted on Monday ends on Saturday 00:00). ok is
// false when h is always, when t is outside h, and when the period does not
// end within a week (h covers the whole week).
func (h Hours) End(t time.Time) (end time.Time, ok bool) {
	if h.Always() {
		return time.Time{}, false
	}
	end, ok = h.windowEnd(t)
	if !ok {
		return time.Time{}, false
	}
	limit := t.Add(8 * 24 * time.Hour)
	for end.Before(limit) {
		next, ok := h.windowEnd(end)
		if !ok {
			return end, true
		}
		end = next
	}
	return time.Time{}, false
}

// windowEnd is the latest end of the windows containing t.
func (h Hours) windowEnd(t time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for _, c := range h.clauses {
		if e, ok := c.window(t); ok && (!found || e.After(best)) {
			best, found = e, true
		}
	}
	return best, found
}

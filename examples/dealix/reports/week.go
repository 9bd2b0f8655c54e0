package reports

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/dealix/platform/internal/pgtext"
)

// ErrInvalidWeek is returned for a week that is not an ISO week such as
// 2026-W49.
var ErrInvalidWeek = errors.New("reports: week is not an ISO week such as 2026-W49")

var isoWeek = regexp.MustCompile(`^([0-9]{4})-W([0-9]{2})$`)

// Week is one ISO 8601 week: Monday 00:00 UTC up to the next Monday.
type Week struct {
	Year, Number int
}

// String is the week as 2026-W49.
func (w Week) String() string { return fmt.Sprintf("%04d-W%02d", w.Year, w.Number) }

// Start is the week's Monday, 00:00 UTC.
func (w Week) Start() time.Time {
	// January 4th is always in week 1.
	jan4 := time.Date(w.Year, time.January, 4, 0, 0, 0, 0, time.UTC)
	monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	return monday.AddDate(0, 0, 7*(w.Number-1))
}

// End is the next week's Monday, 00:00 UTC (excluded).
func (w Week) End() time.Time { return w.Start().AddDate(0, 0, 7) }

// WeekOf is the ISO week t falls in (in UTC).
func WeekOf(t time.Time) Week {
	y, n := t.UTC().ISOWeek()
	return Week{Year: y, Number: n}
}

// ParseWeek reads an ISO week such as 2026-W49. Week 53 is accepted only
// in the years that have one.
func ParseWeek(s string) (Week, error) {
	m := isoWeek.FindStringSubmatch(s)
	if m == nil {
		return Week{}, fmt.Errorf("%w: %q", ErrInvalidWeek, pgtext.Clean(s, 32))
	}
	year, _ := strconv.Atoi(m[1])
	number, _ := strconv.Atoi(m[2])
	w := Week{Year: year, Number: number}
	if year < 1 || number < 1 || number > 53 || WeekOf(w.Start()) != w {
		return Week{}, fmt.Errorf("%w: %q has no such week", ErrInvalidWeek, s)
	}
	return w, nil
}

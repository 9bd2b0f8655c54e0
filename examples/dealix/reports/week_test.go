package reports

import (
	"errors"
	"testing"
	"time"
)

func TestISOWeeks(t *testing.T) {
	for _, tc := range []struct {
		week  string
		start string
	}{
		{"2026-W01", "2025-12-29"}, // the week of January 4th
		{"2026-W49", "2026-11-30"},
		{"2020-W53", "2020-12-28"}, // a year with 53 weeks
		{"2021-W01", "2021-01-04"},
	} {
		w, err := ParseWeek(tc.week)
		if err != nil {
			t.Fatalf("%s: %v", tc.week, err)
		}
		if got := w.Start().Format(time.DateOnly); got != tc.start || w.String() != tc.week {
			t.Fatalf("%s starts %s, want %s", tc.week, got, tc.start)
		}
		if w.End().Sub(w.Start()) != 7*24*time.Hour || WeekOf(w.Start()) != w || WeekOf(w.End().Add(-time.Nanosecond)) != w {
			t.Fatalf("%s: bounds %s..%s", tc.week, w.Start(), w.End())
		}
	}
	for _, bad := range []string{"2021-W53", "2026-W00", "2026-W54", "2026-49", "26-W01", "2026-W1", ""} {
		if _, err := ParseWeek(bad); !errors.Is(err, ErrInvalidWeek) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func TestWantsCSV(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                 false,
		"text/csv":                         true,
		"application/json":                 false,
		"text/csv;q=0.5, application/json": false,
		"application/json;q=0.2, text/csv": true,
		"*/*":                              false,
	} {
		if got := wantsCSV(accept); got != want {
			t.Fatalf("%q: %v, want %v", accept, got, want)
		}
	}
}

// FuzzParseWeek: every accepted week prints back as given and contains
// its own start.
func FuzzParseWeek(f *testing.F) {
	for _, s := range []string{"2026-W49", "2020-W53", "2021-W53", "0000-W01", "9999-W52"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWeek(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidWeek) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if w.String() != s || WeekOf(w.Start()) != w {
			t.Fatalf("%q parsed as %v starting %s", s, w, w.Start())
		}
	})
}

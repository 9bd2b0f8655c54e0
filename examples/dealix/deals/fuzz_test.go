package deals

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/internal/pgtext"
)

// clientError reports whether err is a client-facing 4xx: the parsers'
// only kind of failure.
func clientError(err error) bool {
	var e *httpx.Error
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(httpx.Cursor{CreatedAt: time.Unix(1_800_000_000, 123000).UTC(), ID: "0d3a1c5e-5a1e-4d0c-9e11-000000000001"}.Encode())
	f.Add("!!!")
	f.Add("e30")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := httpx.DecodeCursor(s)
		if err != nil {
			if !clientError(err) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		// An accepted cursor names a canonical UUID PostgreSQL reads, and
		// survives its own round trip.
		if _, err := uuid.Parse(c.ID); err != nil || len(c.ID) != 36 {
			t.Fatalf("%q: id %q", s, c.ID)
		}
		again, err := httpx.DecodeCursor(c.Encode())
		if err != nil || !again.CreatedAt.Equal(c.CreatedAt) || again.ID != c.ID {
			t.Fatalf("%q: round trip %+v -> %+v, %v", s, c, again, err)
		}
	})
}

// FuzzCreateInput checks that a body the validation accepts is one the
// table's constraints accept too, so a client's mistake is a 400, never a
// 500 from PostgreSQL.
func FuzzCreateInput(f *testing.F) {
	f.Add(`{"title":"Clinic rollout","amount":125050,"currency":"SAR","owner":"sara"}`)
	f.Add(`{"title":" ","amount":1,"currency":"SAR"}`)
	f.Add(`{"title":"x","amount":-5,"currency":"usd","lead_id":"nope"}`)
	f.Add(`{"title":"x\u0000","amount":1,"currency":"SAR"}`)
	f.Fuzz(func(t *testing.T, body string) {
		var in createInput
		if json.Unmarshal([]byte(body), &in) != nil {
			return
		}
		err := in.validate()
		if err != nil {
			if !clientError(err) {
				t.Fatalf("%q: %v", body, err)
			}
			return
		}
		if in.Title == "" || len([]rune(in.Title)) > 200 || pgtext.CheckText(in.Title) != nil {
			t.Fatalf("%q: title %q accepted", body, in.Title)
		}
		if in.Owner != nil && (len([]rune(*in.Owner)) > 200 || pgtext.CheckText(*in.Owner) != nil) {
			t.Fatalf("%q: owner %q accepted", body, *in.Owner)
		}
		if *in.Amount < 0 || *in.Amount > MaxAmount || !currencyCode.MatchString(in.Currency) {
			t.Fatalf("%q: amount %d %q accepted", body, *in.Amount, in.Currency)
		}
		if (in.LeadID == nil) != (in.leadID == nil) {
			t.Fatalf("%q: lead id %v parsed as %v", body, in.LeadID, in.leadID)
		}
	})
}

func FuzzCloseInput(f *testing.F) {
	f.Add(`{"outcome":"won"}`)
	f.Add(`{"outcome":"lost","reason":"budget"}`)
	f.Add(`{"outcome":"lost","reason":"  "}`)
	f.Add(`{"outcome":"won","reason":"x"}`)
	f.Fuzz(func(t *testing.T, body string) {
		var in closeInput
		if json.Unmarshal([]byte(body), &in) != nil {
			return
		}
		err := in.validate()
		if err != nil {
			if !clientError(err) {
				t.Fatalf("%q: %v", body, err)
			}
			return
		}
		// The table's CHECK: a lost deal has its reason, a won one none.
		switch in.Outcome {
		case "won":
			if in.Reason != nil {
				t.Fatalf("%q: won with a reason", body)
			}
		case "lost":
			if in.Reason == nil || *in.Reason == "" || len([]rune(*in.Reason)) > 1000 || pgtext.CheckText(*in.Reason) != nil {
				t.Fatalf("%q: lost with reason %v", body, in.Reason)
			}
		default:
			t.Fatalf("%q: outcome %q accepted", body, in.Outcome)
		}
	})
}

func TestParseStatuses(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		fail bool
	}{
		{"", 4, false}, {"incomplete", 4, false}, {"all", 7, false},
		{"completed", 1, false}, {"failed, cancelled", 2, false},
		{"done", 0, true}, {"completed,", 0, true},
	} {
		got, err := parseStatuses(c.in)
		if (err != nil) != c.fail || (err == nil && len(got) != c.n) {
			t.Errorf("parseStatuses(%q) = %v, %v", c.in, got, err)
		}
		if err != nil && !clientError(err) {
			t.Errorf("parseStatuses(%q): %v is not a 400", c.in, err)
		}
	}
}

package outbound

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/internal/pgtext"
)

func badRequest(err error) bool {
	var e *httpx.Error
	return errors.As(err, &e) && e.Status == http.StatusBadRequest
}

func FuzzParseApprovalsQuery(f *testing.F) {
	for _, s := range []string{"", "status=pending", "limit=2&cursor=" + (listCursor{Status: approvals.StatusApproved, Inner: "17"}).encode(),
		"cursor=eyJzIjoiYm9ndXMifQ", "status=approved&cursor=" + (listCursor{Status: approvals.StatusPending}).encode(), "limit=9999", "%%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		order, limit, at, err := parseApprovalsQuery(raw)
		if err != nil {
			if !badRequest(err) {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		// What reaches the service is a known status of the list walked
		// and a limit within the service's bounds.
		if len(order) == 0 || !slices.Contains(order, at.Status) || limit < 1 || limit > approvals.MaxPageSize {
			t.Fatalf("%q: order %v, at %+v, limit %d", raw, order, at, limit)
		}
	})
}

func FuzzValidateCampaign(f *testing.F) {
	f.Add("Launch", "Hello", "Body", "a@b.example", 0.5)
	f.Add(" ", "two\nlines", "", "not an address", 2.0)
	f.Add("n", "s", "b", "A@B.example", -1.0)
	f.Fuzz(func(t *testing.T, name, subject, body, rcpt string, risk float64) {
		in := createInput{Name: name, Message: MessageContent{Subject: subject, Body: body}, Recipients: []string{rcpt, "other@x.example"}, Risk: risk}
		err := in.validate()
		if err != nil {
			if !badRequest(err) {
				t.Fatalf("%+v: %v", in, err)
			}
			return
		}
		// Accepted input is storable and within the table's checks.
		for _, v := range []string{in.Name, in.Message.Subject, in.Message.Body, rcpt} {
			if pgtext.CheckText(v) != nil || v == "" {
				t.Fatalf("accepted unstorable %q", v)
			}
		}
		if !(in.Risk >= 0 && in.Risk <= 1) {
			t.Fatalf("accepted risk %v", in.Risk)
		}
	})
}

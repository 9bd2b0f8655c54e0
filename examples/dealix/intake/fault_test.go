package intake

import (
	"context"
	"errors"
	"testing"

	"github.com/dealix/platform/dlq"
)

func TestFailHubSpotForOneContact(t *testing.T) {
	s := &Service{Log: discard}
	s.FailHubSpotFor(" Probe@Example.Invalid ", true)
	s.HubSpotAttemptsFor("probe@example.invalid", 1)
	s.FailHubSpotFor("not an address", true) // ignored
	if n := s.HubSpotFaults(); n != 1 {
		t.Fatalf("%d contacts with a fault, want 1", n)
	}
	if p := s.probeFor(map[string]string{"email": "PROBE@example.invalid"}); !p.fail || p.attempts != 1 {
		t.Fatalf("probe %+v", p)
	}
	if p := s.probeFor(map[string]string{"email": "other@example.com"}); p != (probe{}) {
		t.Fatalf("another contact carries %+v", p)
	}

	// The worker fails the marked contact's job before touching the
	// database (DB is nil here); an event carrying the address as its
	// changed property is the same contact.
	w := s.HubSpotWorker()
	job := &dlq.Job{Payload: []byte(`{"eventId":1,"subscriptionType":"contact.propertyChange","propertyName":"email","propertyValue":"probe@example.invalid"}`)}
	if err := w.Work(context.Background(), job); !errors.Is(err, ErrHandlerSwitchedOff) {
		t.Fatalf("marked contact's job: %v", err)
	}
	// Another contact without a usable email completes (nothing to do).
	if err := w.Work(context.Background(), &dlq.Job{Payload: []byte(`{"eventId":2,"subscriptionType":"contact.creation"}`)}); err != nil {
		t.Fatalf("other job: %v", err)
	}

	// Switching the fault off lifts the attempts limit with it.
	s.FailHubSpotFor("probe@example.invalid", false)
	if n := s.HubSpotFaults(); n != 0 {
		t.Fatalf("%d contacts with a fault after it was lifted", n)
	}
	s.HubSpotAttemptsFor("probe@example.invalid", 3)
	s.HubSpotAttemptsFor("probe@example.invalid", 0)
	if n := s.HubSpotFaults(); n != 0 {
		t.Fatalf("%d contacts after the attempts limit was lifted", n)
	}
}

package console

import (
	"testing"
	"time"
)

func TestSessionStoreExpiresAndDeletes(t *testing.T) {
	s := &sessionStore{m: map[string]session{}}
	live := s.create(session{tenant: "t", subject: "omar", expires: time.Now().Add(time.Hour)})
	dead := s.create(session{tenant: "t", subject: "lina", expires: time.Now().Add(-time.Second)})
	if live == dead || len(live) != 43 {
		t.Fatalf("session ids %q %q: want distinct 256-bit ids", live, dead)
	}
	if got, ok := s.get(live); !ok || got.subject != "omar" {
		t.Fatalf("live session: %+v %v", got, ok)
	}
	if _, ok := s.get(dead); ok {
		t.Fatal("an expired session is still valid")
	}
	if _, ok := s.get("not-an-id"); ok {
		t.Fatal("an unknown id is a session")
	}
	// Creating another session sweeps the expired ones.
	s.m["stale"] = session{expires: time.Now().Add(-time.Minute)}
	s.create(session{expires: time.Now().Add(time.Hour)})
	if _, kept := s.m["stale"]; kept {
		t.Fatal("an expired session was kept")
	}
	s.delete(live)
	if _, ok := s.get(live); ok {
		t.Fatal("a deleted session is still valid")
	}
}

package server

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestListenDatabaseURLIsReadAndChecked(t *testing.T) {
	cfg, err := LoadConfig(nil, env(map[string]string{
		"DATABASE_URL":        "postgres://owner@db:5432/x",
		"SYSTEM_DATABASE_URL": "postgres://s@pgbouncer:6432/x?default_query_exec_mode=cache_describe",
		"LISTEN_DATABASE_URL": "postgres://s:pw@db:5432/x",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenDatabaseURL != "postgres://s:pw@db:5432/x" {
		t.Fatalf("ListenDatabaseURL %q", cfg.ListenDatabaseURL)
	}
	cc, err := listenConfig(cfg)
	if err != nil || cc == nil || cc.Host != "db" || cc.Port != 5432 || cc.User != "s" || cc.Database != "x" {
		t.Fatalf("listen config %+v, %v", cc, err)
	}
	// Unset: nil, so the workers listen with the system pool's own
	// configuration.
	if cc, err := listenConfig(Config{}); cc != nil || err != nil {
		t.Fatalf("unset: %+v, %v", cc, err)
	}

	_, err = LoadConfig(nil, env(map[string]string{"LISTEN_DATABASE_URL": "postgres://s:secret@db:notaport/x"}), io.Discard)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "LISTEN_DATABASE_URL:") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("a bad URL: %v", err)
	}
}

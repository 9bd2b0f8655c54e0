package server

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dealix/platform/internal/pgboot"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/ratelimit"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]any{
		"Addr":            {cfg.Addr, DefaultAddr},
		"AppRole":         {cfg.AppRole, DefaultAppRole},
		"SystemRole":      {cfg.SystemRole, DefaultSystemRole},
		"JWTIssuer":       {cfg.JWTIssuer, DefaultJWTIssuer},
		"JWTAudience":     {cfg.JWTAudience, DefaultJWTAudience},
		"RateLimit":       {cfg.RateLimit, ratelimit.Rate{Requests: 600, Window: time.Minute, Burst: 600}},
		"MaxBodyBytes":    {cfg.MaxBodyBytes, int64(DefaultMaxBodyBytes)},
		"ShutdownTimeout": {cfg.ShutdownTimeout, DefaultShutdownTimeout},
		"APIKeyCacheTTL":  {cfg.APIKeyCacheTTL, DefaultAPIKeyCacheTTL},
		"CORSOrigins":     {strings.Join(cfg.CORSOrigins, ","), DefaultCORSOrigins},
		"DataDir":         {cfg.DataDir, pgboot.DefaultDataDir()},
		"SkipDemo":        {cfg.SkipDemo, false},
		"DebugRoutes":     {cfg.DebugRoutes, false},
		"ResetData":       {cfg.ResetData, false},
		"PostgresImage":   {cfg.PostgresImage, DefaultPostgresImage},
	}
	for name, got := range want {
		if got[0] != got[1] {
			t.Errorf("%s = %v, want %v", name, got[0], got[1])
		}
	}
	if cfg.JWTHMACKey != nil || cfg.DatabaseURL != "" {
		t.Errorf("unexpected key or URL: %+v", cfg)
	}
}

func TestLoadConfigReadsEveryVariable(t *testing.T) {
	cfg, err := LoadConfig([]string{"-addr", "0.0.0.0:9000", "-reset-data"}, env(map[string]string{
		"DEALIX_ADDR":              "127.0.0.1:1",
		"DATABASE_URL":             "postgres://o@db/x",
		"APP_DATABASE_URL":         "postgres://a@db/x",
		"SYSTEM_DATABASE_URL":      "postgres://s@db/x",
		"DEALIX_JWT_HMAC_KEY":      "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
		"DEALIX_CORS_ORIGINS":      "https://a.example.com, http://localhost:5173",
		"DEALIX_RATE_LIMIT":        "10/s",
		"DEALIX_RATE_BURST":        "20",
		"DEALIX_SHUTDOWN_TIMEOUT":  "5s",
		"DEALIX_API_KEY_CACHE_TTL": "90s",
		"DEALIX_DEMO":              "false",
		"DEALIX_DEBUG_ROUTES":      "true",
		"DEALIX_DATA_DIR":          "/tmp/pg",
		"DEALIX_LOG_LEVEL":         "debug",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "0.0.0.0:9000" || !cfg.ResetData {
		t.Errorf("flags did not win: %q %v", cfg.Addr, cfg.ResetData)
	}
	if len(cfg.JWTHMACKey) != 32 || cfg.RateLimit != (ratelimit.Rate{Requests: 10, Window: time.Second, Burst: 20}) ||
		cfg.ShutdownTimeout != 5*time.Second || cfg.APIKeyCacheTTL != 90*time.Second || !cfg.SkipDemo || !cfg.DebugRoutes || cfg.DataDir != "/tmp/pg" ||
		len(cfg.CORSOrigins) != 2 || cfg.CORSOrigins[1] != "http://localhost:5173" || cfg.LogLevel.String() != "DEBUG" {
		t.Errorf("config %+v", cfg)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	_, err := LoadConfig([]string{"extra"}, env(map[string]string{
		"DEALIX_ADDR":              "nowhere",
		"DEALIX_RATE_LIMIT":        "0/1m",
		"DEALIX_DEMO":              "perhaps",
		"DEALIX_CORS_ORIGINS":      "*",
		"DEALIX_JWT_HMAC_KEY":      "!!",
		"DEALIX_APP_ROLE":          "Robert'); DROP TABLE",
		"APP_DATABASE_URL":         "postgres://a@db/x",
		"DEALIX_MAX_BODY_BYTES":    "-1",
		"DEALIX_LOG_LEVEL":         "loud",
		"DEALIX_API_KEY_CACHE_TTL": "-1s",
	}), io.Discard)
	if !errors.Is(err, ErrInvalidConfig) || ExitCode(err) != 2 {
		t.Fatalf("err %v (exit %d)", err, ExitCode(err))
	}
	for _, name := range []string{"DEALIX_ADDR", "DEALIX_RATE_LIMIT", "DEALIX_DEMO", "DEALIX_CORS_ORIGINS", "DEALIX_JWT_HMAC_KEY",
		"DEALIX_APP_ROLE", "DATABASE_URL", "DEALIX_MAX_BODY_BYTES", "DEALIX_LOG_LEVEL", "DEALIX_API_KEY_CACHE_TTL", "arguments"} {
		if strings.Count(err.Error(), "\n  "+name+":") != 1 {
			t.Errorf("%s reported %d times in:\n%v", name, strings.Count(err.Error(), "\n  "+name+":"), err)
		}
	}
}

func TestLoadConfigAPIKeyCacheOff(t *testing.T) {
	cfg, err := LoadConfig(nil, env(map[string]string{"DEALIX_API_KEY_CACHE_TTL": "0"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIKeyCacheTTL >= 0 {
		t.Fatalf("DEALIX_API_KEY_CACHE_TTL=0 gave %v, want a negative TTL (no cache)", cfg.APIKeyCacheTTL)
	}
}

func TestLoadConfigHelp(t *testing.T) {
	var out strings.Builder
	_, err := LoadConfig([]string{"-h"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "DATABASE_URL") || !strings.Contains(out.String(), "-reset-data") {
		t.Fatalf("%v\n%s", err, out.String())
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]ratelimit.Rate{
		"600/1m": {Requests: 600, Window: time.Minute, Burst: 600},
		"5/s":    {Requests: 5, Window: time.Second, Burst: 5},
		"100/h":  {Requests: 100, Window: time.Hour, Burst: 100},
	} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "10", "x/1m", "-1/1m", "10/500ms", "10/1.5s", "10/forever"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) accepted", in)
		}
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(errors.New("boom")) != 1 || ExitCode(tenancy.ErrInvalidConfig) != 2 {
		t.Fatal("exit codes")
	}
}

func TestCheckOrigin(t *testing.T) {
	for _, ok := range []string{"https://app.example.com", "http://localhost:3000", "http://127.0.0.1:8080"} {
		if err := checkOrigin(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"*", "app.example.com", "https://app.example.com/", "https://App.example.com", "ftp://x", "https://u@x.com", "https://x.com?q"} {
		if checkOrigin(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

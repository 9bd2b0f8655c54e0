package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dealix/platform/internal/pgtest"
)

// syncBuffer is a bytes.Buffer a child process writes while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildBinary builds the server's command into a directory of t.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dealix")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/dealix/platform/examples/dealix")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// childEnv is this process's environment without any of the server's
// variables, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "DEALIX_") || strings.HasSuffix(name, "DATABASE_URL") || strings.HasPrefix(name, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(append(env, "OTEL_SDK_DISABLED=true"), extra...)
}

// dbEnv is the database variables of a server process on db (through
// PgBouncer with the suite's switch set: see urlsFor).
func dbEnv(t *testing.T, db *pgtest.DB) []string {
	t.Helper()
	urls := urlsFor(t, db)
	env := []string{
		"DATABASE_URL=" + urls.owner,
		"APP_DATABASE_URL=" + urls.app,
		"SYSTEM_DATABASE_URL=" + urls.system,
	}
	if urls.listen != "" {
		env = append(env, "LISTEN_DATABASE_URL="+urls.listen)
	}
	return env
}

func TestProcess(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)

	t.Run("SIGTERM drains a slow request and exits 0", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = childEnv(append(dbEnv(t, db), "DEALIX_ADDR=127.0.0.1:0", "DEALIX_DEBUG_ROUTES=true")...)
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill() }()

		// The banner: the URL, the demo credentials, three curl lines.
		banner := make(chan []string, 1)
		go func() {
			var lines []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if strings.HasPrefix(sc.Text(), "(run the last one twice") {
					banner <- lines
				}
			}
			close(banner)
		}()
		lines, ok := <-banner
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("the server printed no banner; stderr:\n%s", stderr.String())
		}
		var base, apiKey string
		curls := 0
		for _, line := range lines {
			if rest, ok := strings.CutPrefix(line, "Dealix reference server listening on "); ok {
				base = rest
			}
			if rest, ok := strings.CutPrefix(line, "Demo API key: "); ok {
				apiKey = rest
			}
			if strings.HasPrefix(line, "  curl ") {
				curls++
			}
		}
		if base == "" || apiKey == "" || curls != 3 {
			t.Fatalf("banner lacks the URL, the API key or three curl lines:\n%s", strings.Join(lines, "\n"))
		}
		req, _ := http.NewRequest("GET", base+"/api/v1/leads", nil)
		req.Header.Set("X-API-Key", apiKey)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the printed API key: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}

		resp, err := http.Get(base + "/health/deep")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte(`{"status":"ok"`)) {
			t.Fatalf("/health/deep: %d %s", resp.StatusCode, body)
		}

		slow, err := http.Get(base + "/debug/slow")
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Body.Close()
		rd := bufio.NewReader(slow.Body)
		if line, err := rd.ReadString('\n'); err != nil || line != "started\n" {
			t.Fatalf("slow request: %q, %v", line, err)
		}
		// The request is in flight: stop the server under it.
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(rd)
		if err != nil || string(rest) != "done\n" {
			t.Fatalf("the slow request did not complete: %q, %v", rest, err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
		}
		if _, err := http.Get(base + "/health"); err == nil {
			t.Fatal("the stopped server still accepts connections")
		}
	})

	t.Run("bad configuration exits 2 with a clear message", func(t *testing.T) {
		t.Parallel()
		db := pgtest.New(t)
		superApp := db.URL(pgtest.RoleAdmin)
		cases := []struct {
			name string
			args []string
			env  []string
			want string
		}{
			{"no database", nil, []string{"DOCKER_HOST=unix:///nonexistent/docker.sock", "DEALIX_POSTGRES_BIN=" + t.TempDir()}, "DATABASE_URL"},
			{"rate", nil, append(dbEnv(t, db), "DEALIX_RATE_LIMIT=lots"), "DEALIX_RATE_LIMIT"},
			{"address", nil, append(dbEnv(t, db), "DEALIX_ADDR=nowhere"), "DEALIX_ADDR"},
			{"origin", nil, append(dbEnv(t, db), "DEALIX_CORS_ORIGINS=https://app.example.com/path"), "DEALIX_CORS_ORIGINS"},
			{"short key", nil, append(dbEnv(t, db), "DEALIX_JWT_HMAC_KEY=c2hvcnQ="), "DEALIX_JWT_HMAC_KEY"},
			{"cost alert threshold", nil, append(dbEnv(t, db), "DEALIX_COST_ALERT_USD=lots"), "DEALIX_COST_ALERT_USD"},
			{"webhook attempts", nil, append(dbEnv(t, db), "DEALIX_WEBHOOK_MAX_ATTEMPTS=0"), "DEALIX_WEBHOOK_MAX_ATTEMPTS"},
			{"payment delay", nil, append(dbEnv(t, db), "DEALIX_MOYASAR_PAY_AFTER=soon"), "DEALIX_MOYASAR_PAY_AFTER"},
			{"public URL", nil, append(dbEnv(t, db), "DEALIX_PUBLIC_URL=dealix.example.com"), "DEALIX_PUBLIC_URL"},
			{"deals step delay", nil, append(dbEnv(t, db), "DEALIX_DEBUG_ROUTES=true", "DEALIX_DEALS_STEP_DELAY=-1s"), "DEALIX_DEALS_STEP_DELAY"},
			{"flag", []string{"-bogus"}, dbEnv(t, db), "bogus"},
			{"database URL", nil, []string{"DATABASE_URL=postgres://[::1"}, "DATABASE_URL"},
			{"app role bypasses RLS", nil, []string{
				"DATABASE_URL=" + db.URL(pgtest.RoleOwner), "APP_DATABASE_URL=" + superApp, "SYSTEM_DATABASE_URL=" + db.URL(pgtest.RoleSystem),
			}, "bound by row-level security"},
			{"owner may not create roles", nil, []string{"DATABASE_URL=" + db.URL(pgtest.RoleOwner)}, "APP_DATABASE_URL is not set"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, bin, c.args...)
				cmd.Env = childEnv(append(c.env, "DEALIX_ADDR_UNUSED=1")...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 2 {
					t.Fatalf("exit %v, want status 2; stderr:\n%s", err, stderr.String())
				}
				msg := stderr.String()
				if !strings.Contains(msg, c.want) {
					t.Fatalf("stderr does not say %q:\n%s", c.want, msg)
				}
				if strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
					t.Fatalf("panicked:\n%s", msg)
				}
				if strings.Contains(msg, pgtest.OwnerRole+"_test_password") {
					t.Fatalf("a password reached the message:\n%s", msg)
				}
			})
		}
	})
}

// startBinary runs the server's binary with env until its banner names
// the URL and the demo API key; the process is killed when t ends.
func startBinary(t *testing.T, bin string, env []string) (cmd *exec.Cmd, base, apiKey string, stderr *syncBuffer) {
	t.Helper()
	cmd = exec.Command(bin)
	cmd.Env = childEnv(env...)
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		announced := false
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "Dealix reference server listening on "); ok {
				base = rest
			}
			if rest, ok := strings.CutPrefix(line, "Demo API key: "); ok {
				apiKey = rest
			}
			if base != "" && apiKey != "" && !announced {
				announced = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the server printed no banner; stderr:\n%s", stderr.String())
	}
	return cmd, base, apiKey, stderr
}

func stopBinary(t *testing.T, cmd *exec.Cmd, stderr *syncBuffer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
	}
}

// TestStartsOnLocalBinariesWithoutDatabaseURLOrDocker runs the binary the
// way the README's quick start does, with no DATABASE_URL and no Docker
// engine: it starts PostgreSQL's own binaries in a data directory, serves
// /health/deep, and keeps its data for the next start.
func TestStartsOnLocalBinariesWithoutDatabaseURLOrDocker(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dataDir, err := os.MkdirTemp("", "dealix-quickstart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	// When the tests run as root the cluster runs as an unprivileged user,
	// which must reach the directory.
	if err := os.Chmod(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"DEALIX_ADDR=127.0.0.1:0", "DOCKER_HOST=unix:///nonexistent/docker.sock", "DEALIX_DATA_DIR=" + filepath.Join(dataDir, "pg")}

	cmd, base, apiKey, stderr := startBinary(t, bin, env)
	resp, err := http.Get(base + "/health/deep")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("/health/deep = %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(stderr.String(), "source=local") {
		t.Fatalf("the database did not come from the local binaries:\n%s", stderr.String())
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/leads", strings.NewReader(`{"name":"Kept Across Restarts","email":"kept@example.com"}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "quickstart-1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create lead = %d %s", resp.StatusCode, body)
	}
	stopBinary(t, cmd, stderr)

	cmd, base, apiKey, stderr = startBinary(t, bin, env)
	req, _ = http.NewRequest(http.MethodGet, base+"/api/v1/leads", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Kept Across Restarts") {
		t.Fatalf("after a restart the lead is gone: %d %s", resp.StatusCode, body)
	}
	stopBinary(t, cmd, stderr)
}

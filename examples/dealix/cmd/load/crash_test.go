package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dealix/platform/internal/pgtest"
)

// serverProcess is the server binary running as a child process.
type serverProcess struct {
	cmd *exec.Cmd
	url string
}

func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dealix")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dealix/platform/examples/dealix").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServer starts bin and waits for its banner's URL.
func startServer(t *testing.T, bin string, env []string) *serverProcess {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "listening on "); ok {
				found <- strings.TrimSpace(u)
			}
		}
		close(found)
	}()
	select {
	case u, ok := <-found:
		if !ok {
			t.Fatal("the server exited before listening")
		}
		return &serverProcess{cmd: cmd, url: u}
	case <-time.After(2 * time.Minute):
		t.Fatal("the server did not start")
	}
	return nil
}

// kill stops the process with SIGKILL: no drain, no deferred work.
func (p *serverProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

func serverEnv(db *pgtest.DB, key []byte) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "DEALIX_") || strings.HasSuffix(name, "DATABASE_URL") || strings.HasPrefix(name, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "OTEL_SDK_DISABLED=true",
		"DATABASE_URL="+db.URL(pgtest.RoleOwner),
		"APP_DATABASE_URL="+db.URL(pgtest.RoleApp),
		"SYSTEM_DATABASE_URL="+db.URL(pgtest.RoleSystem),
		"DEALIX_ADDR=127.0.0.1:0",
		"DEALIX_JWT_HMAC_KEY="+base64.StdEncoding.EncodeToString(key),
		"DEALIX_RATE_LIMIT=1000000/1s",
		"DEALIX_DEMO=false",
		"DEALIX_LOG_LEVEL=error")
}

// TestKillDashNineUnderLoad kills the server with SIGKILL while the load
// tool writes, ten rounds, then checks against the database that every
// write the client saw acknowledged is there, and that every create
// retried with its key after the restarts gets its stored answer or runs
// once.
func TestKillDashNineUnderLoad(t *testing.T) {
	const rounds = 10
	bin := buildServer(t)
	db := pgtest.New(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := serverEnv(db, key)

	var (
		mu      sync.Mutex
		writes  []Answer // creates, retries and patches, answered or not
		acked   atomic.Int64
		answers = map[int]int{}
	)
	collect := func(a Answer) {
		mu.Lock()
		defer mu.Unlock()
		answers[a.Status]++
		if a.Op == OpCreate || a.Op == OpPatch || a.Op == OpRetry {
			writes = append(writes, a)
			if a.Status >= 200 && a.Status < 300 {
				acked.Add(1)
			}
		}
	}
	for round := range rounds {
		srv := startServer(t, bin, env)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		before := acked.Load()
		go func() {
			_, err := Run(ctx, Options{
				Target: srv.url, Duration: 10 * time.Minute, MaxRequests: 1_000_000,
				Concurrency: 8, Tenants: 2, HMACKey: key,
				Mix:      Mix{Create: 50, Retry: 15, Patch: 20, Get: 15},
				OnAnswer: collect,
			})
			done <- err
		}()
		// Let a random number of writes be acknowledged, then kill.
		n, _ := rand.Int(rand.Reader, big.NewInt(80))
		want := before + 20 + n.Int64()
		deadline := time.Now().Add(2 * time.Minute)
		for acked.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: only %d writes acknowledged", round, acked.Load()-before)
			}
			time.Sleep(5 * time.Millisecond)
		}
		srv.kill(t)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	srv := startServer(t, bin, env)
	ctx := context.Background()

	mu.Lock()
	defer mu.Unlock()
	if answers[http.StatusInternalServerError] > 0 {
		t.Errorf("%d answers were 500", answers[http.StatusInternalServerError])
	}

	// 1. Every acknowledged create is in the database, and every
	// acknowledged patch's version (or a later one).
	var createdIDs []string
	patched := map[string]int{}
	unknown := 0
	for _, a := range writes {
		switch {
		case a.Status == 0:
			unknown++
		case a.Op == OpCreate && a.Status == http.StatusCreated:
			var l struct{ ID string }
			if err := json.Unmarshal(a.Body, &l); err != nil || l.ID == "" {
				t.Fatalf("create answer without id: %s", a.Body)
			}
			createdIDs = append(createdIDs, l.ID)
		case a.Op == OpPatch && a.Status == http.StatusOK:
			id := a.Path[strings.LastIndexByte(a.Path, '/')+1:]
			v, err := strconv.Atoi(strings.Trim(a.Header.Get("ETag"), `"v`))
			if err != nil {
				t.Fatalf("patch ETag %q", a.Header.Get("ETag"))
			}
			patched[id] = max(patched[id], v)
		}
	}
	var found int
	if err := db.System.QueryRow(ctx, `SELECT count(*) FROM dealix.leads WHERE id = ANY($1::uuid[])`, createdIDs).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != len(createdIDs) {
		t.Errorf("%d acknowledged creates, %d of them in the database", len(createdIDs), found)
	}
	for id, v := range patched {
		var got int
		if err := db.System.QueryRow(ctx, `SELECT version FROM dealix.leads WHERE id = $1`, id).Scan(&got); err != nil || got < v {
			t.Errorf("lead %s: version %d (%v), acknowledged patch made v%d", id, got, err, v)
		}
	}

	// 2. Every create, acknowledged or cut by a kill, retried with its key
	// after the restarts: the stored answer, or a first run; one lead each.
	client := newClient(4, time.Minute)
	retried, replayed := 0, 0
	for _, a := range writes {
		if a.Op != OpCreate || (a.Status != 0 && a.Status != http.StatusCreated) {
			continue
		}
		req, err := http.NewRequest(http.MethodPost, srv.url+"/api/v1/leads", strings.NewReader(string(a.ReqBody)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = a.ReqHeader.Clone()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		retried++
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("retry of %s: %d %s", a.ReqHeader.Get("Idempotency-Key"), resp.StatusCode, body)
		}
		if resp.Header.Get("Idempotent-Replayed") == "true" {
			replayed++
		}
		if a.Status == http.StatusCreated && string(body) != string(a.Body) {
			t.Errorf("retry of an acknowledged create answered\n%s\nnot the stored\n%s", body, a.Body)
		}
		var in struct{ Name string }
		_ = json.Unmarshal(a.ReqBody, &in)
		var n int
		if err := db.System.QueryRow(ctx, `SELECT count(*) FROM dealix.leads WHERE name = $1`, in.Name).Scan(&n); err != nil || n != 1 {
			t.Errorf("lead %q exists %d times (%v) after its key was retried", in.Name, n, err)
		}
	}
	t.Logf("%d rounds: %d write requests, %d acknowledged creates (all found), %d acknowledged patches, %d without an answer; "+
		"%d creates retried after the restarts, %d replayed; answers by status %v",
		rounds, len(writes), len(createdIDs), len(patched), unknown, retried, replayed, answers)
}

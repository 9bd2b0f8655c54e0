package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/outbound"
	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
)

// TestOutboundServerKilledMidBatch kills the server with SIGKILL while its
// worker is in the middle of a campaign's recipients, restarts it, and
// checks that every recipient gets exactly one message.
func TestOutboundServerKilledMidBatch(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	db := pgtest.New(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := append(dbEnv(t, db), "DEALIX_ADDR=127.0.0.1:0", "DEALIX_JWT_HMAC_KEY="+base64.StdEncoding.EncodeToString(key))
	tenant := newTenant()
	tok := func(subject string, scopes ...string) string {
		return "Bearer " + signToken(t, key, jwt.MapClaims{
			"iss": server.DefaultJWTIssuer, "aud": server.DefaultJWTAudience, "sub": subject,
			"tenant_id": tenant, "scopes": scopes, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
		})
	}
	send := func(base, method, path, body, auth string, headers ...string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", auth)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	ctx := context.Background()

	cmd, base, _, stderr := startBinary(t, bin, env)
	rcpts := recipients(51, "killed.example")
	status, body := send(base, "POST", "/api/v1/outbound/campaigns", campaignBody(rcpts, 0, false), tok("sara"), "Idempotency-Key", uuid.NewString())
	if status != http.StatusAccepted {
		t.Fatalf("create: %d %s", status, body)
	}
	var held campaignCreated
	if err := json.Unmarshal(body, &held); err != nil {
		t.Fatal(err)
	}
	campaignID := held.Campaign.ID

	// Hold the 21st recipient's message in the sender: an uncommitted row
	// with its key makes the fake sender's insert wait, so the worker
	// stops there with 20 recipients sent.
	block, err := db.System.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer block.Rollback(ctx)
	if _, err := block.Exec(ctx, `INSERT INTO dealix.outbound_fake_mailbox (tenant_id, message_key, recipient, subject, body)
		VALUES ($1, $2, $3, 'held', 'held')`, tenant, outbound.MessageKey(campaignID, rcpts[20]), rcpts[20]); err != nil {
		t.Fatal(err)
	}

	status, body = send(base, "POST", "/admin/approvals/"+held.ApprovalID+"/approve", "", tok("omar", "admin"))
	if status != http.StatusOK {
		t.Fatalf("approve: %d %s", status, body)
	}
	ledger := func() (sent, sending int) {
		t.Helper()
		if err := db.System.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'sending')
			FROM dealix.outbound_messages WHERE tenant_id = $1 AND campaign_id = $2`, tenant, campaignID).Scan(&sent, &sending); err != nil {
			t.Fatal(err)
		}
		return sent, sending
	}
	deadline := time.Now().Add(time.Minute)
	for {
		sent, sending := ledger()
		if sent == 20 && sending == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not reach the held recipient: %d sent, %d sending; stderr:\n%s", sent, sending, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// SIGKILL in the middle of the batch, then let the held send go: the
	// dead process's transaction can never commit it.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if err := block.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// The job's lease would run out a minute after it was taken (the
	// queue's timeout plus the grace); the dlq's own tests cover that
	// rescue, so end the lease now rather than wait for it.
	if _, err := db.Admin.Exec(ctx, `UPDATE platform.dlq_jobs SET lease_until = now() WHERE tenant_id = $1 AND state = 'running'`, tenant); err != nil {
		t.Fatal(err)
	}

	_, base, _, stderr = startBinary(t, bin, env)
	deadline = time.Now().Add(2 * time.Minute)
	for {
		status, body = send(base, "GET", held.StatusURL, "", tok("sara"))
		var c campaignView
		_ = json.Unmarshal(body, &c)
		if status == http.StatusOK && c.Status == "sent" {
			if c.Counts.Sent != 51 || c.Counts.Pending != 0 {
				t.Fatalf("sent campaign %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign not sent after the restart: %d %s; stderr:\n%s", status, body, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	rows, err := db.System.Query(ctx, `SELECT recipient, calls FROM dealix.outbound_fake_mailbox WHERE tenant_id = $1`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	messages, calls := map[string]int{}, map[string]int{}
	for rows.Next() {
		var r string
		var n int
		if err := rows.Scan(&r, &n); err != nil {
			t.Fatal(err)
		}
		messages[r]++
		calls[r] += n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantEachOnce(t, rcpts, messages, calls)
	var attempt, retried int
	if err := db.System.QueryRow(ctx, `SELECT
		(SELECT attempt FROM platform.dlq_jobs WHERE tenant_id = $1 AND queue = $2),
		(SELECT count(*) FROM dealix.outbound_messages WHERE tenant_id = $1 AND attempts > 1)`,
		tenant, server.QueueOutbound).Scan(&attempt, &retried); err != nil {
		t.Fatal(err)
	}
	if attempt != 2 || retried != 1 {
		t.Fatalf("job attempt %d, %d recipients claimed twice; want 2 and 1 (the one in flight)", attempt, retried)
	}
}

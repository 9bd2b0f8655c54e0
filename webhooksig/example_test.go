package webhooksig_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/webhooksig"
)

// Verify a GitHub delivery: the pure check, without HTTP.
func ExampleGitHub_Verify() {
	v, err := webhooksig.NewGitHub(webhooksig.GitHubConfig{Secrets: []string{"It's a Secret to Everybody"}})
	if err != nil {
		panic(err)
	}
	body := []byte("Hello, World!")
	m := &webhooksig.Message{Method: "POST", Body: body, Header: http.Header{}}
	m.Header.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	m.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	d, err := v.Verify(m)
	// GitHub does not sign X-GitHub-Delivery: the replay guard keys the
	// delivery by its signature's digest, and the header is kept for logs.
	fmt.Println(d.SenderID, strings.HasPrefix(d.ID, "sig:"), err)

	m.Body = []byte("Hello, World?")
	_, err = v.Verify(m)
	fmt.Println(err, errors.Is(err, webhooksig.ErrBadSignature), webhooksig.StatusCode(err))
	// Output:
	// 72d3162e-cc78-11e3-81ab-4c9367dc0958 true <nil>
	// webhooksig: github: X-Hub-Signature-256: signature does not match true 401
}

// Protect a handler with the middleware and the replay guard; a Stripe
// secret is being rolled, so both the old and the new one are active. The
// handler fails the first attempt, so the sender's retry reaches it again;
// once it answered 2xx, a resend is a replay.
func ExampleMiddleware_Handler() {
	db := pgtest.ForExample() // a migrated database; in production, a pool of the serving role
	store, err := webhooksig.NewReplayStore(db.App, webhooksig.ReplayStoreConfig{})
	if err != nil {
		panic(err)
	}
	v, err := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{"whsec_new", "whsec_old"}})
	if err != nil {
		panic(err)
	}
	mw, err := webhooksig.New(v, webhooksig.Config{Replay: store, MaxBodyBytes: 64 << 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	attempts := 0
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d, _ := webhooksig.DeliveryFromContext(r.Context())
		attempts++
		fmt.Printf("handler: attempt %d: %s %s\n", attempts, d.ID, body)
		if attempts == 1 {
			http.Error(w, "ledger unavailable", http.StatusServiceUnavailable)
		}
	})
	srv := httptest.NewServer(mw.Handler(events))
	defer srv.Close()

	send := func(body, signature string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Stripe-Signature", signature)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var problem struct {
			Detail string `json:"detail"`
		}
		if resp.Header.Get("Content-Type") == "application/problem+json" {
			_ = json.NewDecoder(resp.Body).Decode(&problem)
		}
		fmt.Println(strings.TrimSpace(fmt.Sprint(resp.StatusCode, " ", problem.Detail)))
	}
	body := `{"id":"evt_1","type":"invoice.paid"}`
	signature := webhooksig.SignStripe(time.Now(), []byte(body), "whsec_old")
	send(body, signature) // the handler fails: the claim is released
	send(body, signature) // the sender's retry is processed
	send(body, signature) // a replay of a completed delivery
	send(body, webhooksig.SignStripe(time.Now(), []byte(body), "whsec_unknown"))
	// Output:
	// handler: attempt 1: evt_1 {"id":"evt_1","type":"invoice.paid"}
	// 503
	// handler: attempt 2: evt_1 {"id":"evt_1","type":"invoice.paid"}
	// 200
	// 409 webhooksig: stripe: delivery: delivery already received
	// 401 webhooksig: stripe: Stripe-Signature: signature does not match
}

// Sign a Standard Webhooks message, as a sender does.
func ExampleSignStandard() {
	sig, err := webhooksig.SignStandard("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	fmt.Println(sig, err)
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= <nil>
}

// HubSpot v3 signs the URI after decoding a documented set of escapes.
func ExampleHubSpotDecodeURI() {
	fmt.Println(webhooksig.HubSpotDecodeURI("https://example.com/hook%3Fportal%3D1%2C2%20x"))
	// Output: https://example.com/hook?portal%3D1,2%20x
}

// Claim a delivery in the handler's own transaction: the record of the
// delivery commits or rolls back with the handler's writes, so a failed
// attempt leaves it free for the retry and a committed one is final.
func ExampleReplayStore_ClaimTx() {
	db := pgtest.ForExample() // a migrated database; in production, a pool of the serving role
	store, err := webhooksig.NewReplayStore(db.App, webhooksig.ReplayStoreConfig{})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	process := func(fail bool) {
		err := pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error {
			c, err := store.ClaimTx(ctx, tx, "stripe", "evt_1", 72*time.Hour)
			if err != nil {
				return err
			}
			fmt.Println("claim:", c.Status)
			if c.Status != webhooksig.ClaimAcquired {
				return nil // completed: acknowledge; in progress: answer 409 with Retry-After
			}
			// ... the handler's writes in tx ...
			if fail {
				return errors.New("ledger write failed")
			}
			return nil
		})
		fmt.Println("result:", err)
	}
	process(true)  // rolls back, and the claim with it
	process(false) // the sender's retry is processed
	process(false) // a replay
	// Output:
	// claim: acquired
	// result: ledger write failed
	// claim: acquired
	// result: <nil>
	// claim: completed
	// result: <nil>
}

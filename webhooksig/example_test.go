package webhooksig_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

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
	fmt.Println(d.ID, err)

	m.Body = []byte("Hello, World?")
	_, err = v.Verify(m)
	fmt.Println(err, errors.Is(err, webhooksig.ErrBadSignature), webhooksig.StatusCode(err))
	// Output:
	// 72d3162e-cc78-11e3-81ab-4c9367dc0958 <nil>
	// webhooksig: github: X-Hub-Signature-256: signature does not match true 401
}

// Protect a handler with the middleware; a Stripe secret is being rolled,
// so both the old and the new one are active.
func ExampleMiddleware_Handler() {
	v, err := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{"whsec_new", "whsec_old"}})
	if err != nil {
		panic(err)
	}
	mw, err := webhooksig.New(v, webhooksig.Config{MaxBodyBytes: 64 << 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d, _ := webhooksig.DeliveryFromContext(r.Context())
		fmt.Printf("handler: %s %s\n", d.ID, body)
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
		problem, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), strings.Contains(string(problem), "signature does not match"))
	}
	body := `{"id":"evt_1","type":"invoice.paid"}`
	send(body, webhooksig.SignStripe(time.Now(), []byte(body), "whsec_old"))
	send(body, webhooksig.SignStripe(time.Now(), []byte(body), "whsec_unknown"))
	// Output:
	// handler: evt_1 {"id":"evt_1","type":"invoice.paid"}
	// 200  false
	// 401 application/problem+json true
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

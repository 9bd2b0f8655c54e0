//go:build !race

// The race detector makes sync.Pool drop items at random, so the pooled
// hash states would be rebuilt and counted; this file is built without it.

package webhooksig_test

import (
	"testing"
	"time"

	"github.com/dealix/platform/webhooksig"
)

// TestVerifyAllocations holds Stripe and Standard Webhooks verification,
// with the default clock, to their allocations per delivery: none for
// Standard Webhooks, one for Stripe (the event id, copied out of the body
// so that it outlives the caller's buffer).
func TestVerifyAllocations(t *testing.T) {
	now := time.Now()
	stripe, err := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{"whsec_alloc"}})
	if err != nil {
		t.Fatal(err)
	}
	stripeMsg := message("POST", "", benchPayload, "Stripe-Signature", webhooksig.SignStripe(now, benchPayload, "whsec_alloc"))
	standard, err := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{standardSecret}})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := webhooksig.SignStandard("msg_1", now, benchPayload, standardSecret)
	if err != nil {
		t.Fatal(err)
	}
	standardMsg := message("POST", "", benchPayload, "webhook-id", "msg_1", "webhook-timestamp", formatUnix(now), "webhook-signature", sig)
	for _, c := range []struct {
		v    webhooksig.Verifier
		m    *webhooksig.Message
		want float64
	}{{stripe, stripeMsg, 1}, {standard, standardMsg, 0}} {
		var verr error
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := c.v.Verify(c.m); err != nil {
				verr = err
			}
		})
		if verr != nil {
			t.Fatalf("%s: %v", c.v.Name(), verr)
		}
		if allocs != c.want {
			t.Errorf("%s: %v allocations per verification, want %v", c.v.Name(), allocs, c.want)
		}
	}
}

package server

import (
	"fmt"
	"io"
)

// printBanner tells a newcomer where the server is and what to try.
func printBanner(out io.Writer, url string, demo Demo) {
	fmt.Fprintf(out, "Dealix reference server listening on %s\n", url)
	if demo.TenantID == "" {
		fmt.Fprintf(out, "\nTry:\n  curl -s %s/api/v1/pricing/plans\n", url)
		return
	}
	fmt.Fprintf(out, "\nDemo tenant:  %s\n", demo.TenantID)
	if demo.JWT != "" {
		fmt.Fprintf(out, "Demo JWT:     %s\n              (admin scope, valid 24 hours)\n", demo.JWT)
	}
	fmt.Fprintf(out, "Demo API key: %s\n              (replaced at every start)\n", demo.APIKey)
	fmt.Fprintf(out, "\nTry:\n")
	fmt.Fprintf(out, "  curl -s %s/api/v1/pricing/plans\n", url)
	fmt.Fprintf(out, "  curl -s -H 'X-API-Key: %s' %s/api/v1/leads\n", demo.APIKey, url)
	cred := "X-API-Key: " + demo.APIKey
	if demo.JWT != "" {
		cred = "Authorization: Bearer " + demo.JWT
	}
	fmt.Fprintf(out, "  curl -s -X POST -H '%s' -H 'Idempotency-Key: try-1' -H 'Content-Type: application/json' \\\n"+
		"       -d '{\"name\":\"Omar Al-Ghamdi\",\"company\":\"Mecca Foods\"}' %s/api/v1/leads\n", cred, url)
	fmt.Fprintf(out, "(run the last one twice: the second answer is a replay of the first)\n\n")
}

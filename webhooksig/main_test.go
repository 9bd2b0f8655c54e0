package webhooksig_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/webhooksig"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(webhooksig.Migrate))
}

// fixedNow is the clock of most tests, so timestamp checks are exact.
var fixedNow = time.Date(2026, 4, 23, 9, 0, 0, 0, time.UTC)

func clockAt(t time.Time) func() time.Time { return func() time.Time { return t } }

// message builds a Message from header pairs.
func message(method, url string, body []byte, kv ...string) *webhooksig.Message {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &webhooksig.Message{Method: method, URL: url, Header: h, Body: body}
}

func formatUnix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

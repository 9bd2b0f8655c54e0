package gates_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/gates"
)

const goodFile = `{
  "name": "Release readiness",
  "verdict": "RELEASE READY",
  "rule": {"min_closed": 2, "all_p0": true},
  "timeout": "5s",
  "gates": [
    {"id": "R1", "title": "health", "area": "technical", "priority": "P0",
     "check": {"kind": "http", "url": "${BASE_URL}/health", "json": {"status": "ok"}, "budget": "2s"}},
    {"id": "R2", "title": "readme", "area": "docs", "timeout": "1s",
     "check": {"kind": "file", "path": "${DIR}/README.md", "headings": ["Quick start"]}},
    {"id": "R3", "title": "pen test", "area": "security", "priority": "P2",
     "check": {"kind": "blocked", "reason": "needs an outside tester"}}
  ]
}`

func TestParseAndRunAGateFile(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("# X\n## Quick start\n"), 0o644))

	set, err := gates.Parse("release.json", []byte(goodFile), map[string]string{"BASE_URL": srv.URL, "DIR": dir})
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, set.Timeout)
	require.Equal(t, time.Second, set.Gates[1].Timeout)
	require.Equal(t, gates.Rule{MinClosed: 2, AllP0: true}, set.Rule)

	report, err := set.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, report.Closed())
	require.Equal(t, gates.Blocked, report.Results[2].Result.Status)
	require.True(t, report.Pass)
}

func TestBrokenGateFilesNameLineAndColumn(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"BASE_URL": "http://127.0.0.1:1", "DIR": "."}
	for _, tc := range []struct {
		name, file, want string
	}{
		{"syntax", "{\n  \"name\": \"x\",\n  \"gates\": [ }\n", "broken.json:3:14: invalid character"},
		{"unknown field", "{\n  \"name\": \"x\",\n  \"colour\": 1\n}", "broken.json:3:3: json: unknown field"},
		{"wrong type", "{\n  \"name\": 7\n}", "broken.json:2:"},
		{"unknown kind", "{\"name\": \"x\", \"gates\": [\n  {\"id\": \"A\", \"title\": \"a\", \"check\": {\"kind\": \"ftp\"}}\n]}", "broken.json:2:3: gate A: unknown check kind \"ftp\""},
		{"bad duration", "{\"name\": \"x\", \"gates\": [\n  {\"id\": \"A\", \"check\": {\"kind\": \"file\"}},\n  {\"id\": \"B\", \"timeout\": \"soon\", \"check\": {\"kind\": \"file\"}}\n]}", "broken.json:3:3: gate B: timeout"},
		{"unset variable", "{\"name\": \"x\", \"gates\": [\n\n    {\"id\": \"A\", \"check\": {\"kind\": \"http\", \"url\": \"${NOT_SET_ANYWHERE_X}\"}}]}", "broken.json:3:5: ${NOT_SET_ANYWHERE_X} is not set"},
		{"duplicate id", "{\"name\": \"x\", \"gates\": [\n {\"id\": \"A\", \"check\": {\"kind\": \"file\"}},\n {\"id\": \"A\", \"check\": {\"kind\": \"file\"}}]}", "gate id \"A\" appears twice"},
		{"blocked without reason", "{\"name\": \"x\", \"gates\": [{\"id\": \"A\", \"check\": {\"kind\": \"blocked\"}}]}", "broken.json:1:25: gate A: a blocked gate needs its reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gates.Parse("broken.json", []byte(tc.file), vars)
			require.ErrorIs(t, err, gates.ErrInvalidFile)
			var fe *gates.FileError
			require.True(t, errors.As(err, &fe))
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// FuzzParse checks that no gate file makes Parse panic, and that every
// refusal is located.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodFile))
	f.Add([]byte(`{"gates":[{"id":"A","check":{"kind":"blocked","reason":"r"}}]}`))
	f.Add([]byte(`{"gates":[{"id":"A","check":{"kind":"sql","want_rows":-1}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := gates.Parse("f.json", data, map[string]string{"BASE_URL": "x", "DIR": "y"})
		if err != nil {
			var fe *gates.FileError
			require.True(t, errors.As(err, &fe), "%v", err)
			require.Positive(t, fe.Line)
			require.Positive(t, fe.Column)
		}
	})
}

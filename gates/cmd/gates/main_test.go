package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "set.json")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "present"), []byte("x"), 0o644))
	pass := writeFile(t, `{"name": "ok", "verdict": "RELEASE READY", "gates": [{"id": "A", "title": "present", "check": {"kind": "file", "path": "${D}/present"}}]}`)
	fail := writeFile(t, `{"name": "no", "gates": [{"id": "A", "title": "absent", "check": {"kind": "file", "path": "${D}/absent"}}]}`)
	broken := writeFile(t, "{\n  \"name\": ")

	var out, errOut bytes.Buffer
	require.Equal(t, 0, run([]string{"-file", pass, "-var", "D=" + dir}, &out, &errOut), errOut.String())
	require.True(t, strings.HasSuffix(out.String(), "OVERALL SCORE: 100.0% (1/1) — RELEASE READY: YES\n"), out.String())

	out.Reset()
	require.Equal(t, 1, run([]string{"-file", fail, "-var", "D=" + dir, "-format", "markdown"}, &out, &errOut))
	require.Contains(t, out.String(), "| A | absent | P1 | 🔴 |")

	errOut.Reset()
	require.Equal(t, 2, run([]string{"-file", broken}, &out, &errOut))
	require.Contains(t, errOut.String(), "set.json:2:")

	require.Equal(t, 2, run([]string{"-file", pass, "-format", "yaml"}, &out, &errOut))
	require.Equal(t, 2, run([]string{}, &out, &errOut))
	require.Equal(t, 2, run([]string{"-var", "novalue"}, &out, &errOut))
}

package main

import (
	"bytes"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestExitCodes(t *testing.T) {
	t.Parallel()
	root := "../../../../.."
	var out, errOut bytes.Buffer
	// The documents are in the tree: those two gates pass.
	code := run([]string{"-base-url", "http://127.0.0.1:1", "-root", root, "-only", "O5,I1"}, noEnv, &out, &errOut)
	if code != 0 || !strings.HasSuffix(out.String(), "OVERALL SCORE: 100.0% (2/2) — LAUNCH READY: YES\n") {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}

	// Nothing listens: the live gate fails, and brief keeps its reason in
	// the last lines.
	out.Reset()
	code = run([]string{"-set", "release", "-only", "RR1", "-format", "brief"}, func(name string) string {
		if name == "BASE_URL" {
			return "http://127.0.0.1:1"
		}
		return ""
	}, &out, &errOut)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "[OPEN   ] RR1") || !strings.Contains(lines[0], "connection refused") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}

	for _, args := range [][]string{
		{}, // no base URL
		{"-base-url", "http://x", "-set", "beta"},
		{"-base-url", "http://x", "-format", "yaml"},
		{"-base-url", "http://x", "-only", "T1,Z9"}, // no such gate
		{"-nonsense"},
	} {
		errOut.Reset()
		if code := run(args, noEnv, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 with a message", args, code, errOut.String())
		}
	}
}

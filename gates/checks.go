package gates

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// FileCheck closes when Path exists; with NonEmpty, when the file has
// content or the directory has entries; with Headings, when the Markdown
// file has a heading line for each (any level, matched as written); with
// Contains, when the file holds each string.
type FileCheck struct {
	Path     string
	NonEmpty bool
	Headings []string
	Contains []string
}

// Run inspects the file system.
func (c FileCheck) Run(context.Context) Result {
	info, err := os.Stat(c.Path)
	if err != nil {
		return openf("%s: %v", c.Path, err)
	}
	if info.IsDir() {
		entries, err := os.ReadDir(c.Path)
		if err != nil {
			return openf("%s: %v", c.Path, err)
		}
		if c.NonEmpty && len(entries) == 0 {
			return openf("%s is an empty directory", c.Path)
		}
		return closedf("%s: directory, %d entries", c.Path, len(entries))
	}
	if c.NonEmpty && info.Size() == 0 {
		return openf("%s is empty", c.Path)
	}
	missing, err := missingStrings(c.Path, c.Contains)
	if err != nil {
		return openf("%s: %v", c.Path, err)
	}
	if len(missing) > 0 {
		return openf("%s lacks %q", c.Path, missing)
	}
	if len(c.Headings) == 0 {
		return closedf("%s: %d bytes", c.Path, info.Size())
	}
	missing, err = missingHeadings(c.Path, c.Headings)
	if err != nil {
		return openf("%s: %v", c.Path, err)
	}
	if len(missing) > 0 {
		return openf("%s lacks headings %q", c.Path, missing)
	}
	return closedf("%s: %d bytes, %d required headings", c.Path, info.Size(), len(c.Headings))
}

func missingStrings(path string, want []string) ([]string, error) {
	if len(want) == 0 {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, s := range want {
		if !bytes.Contains(data, []byte(s)) {
			missing = append(missing, s)
		}
	}
	return missing, nil
}

func missingHeadings(path string, want []string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	found := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			found[strings.TrimSpace(strings.TrimLeft(line, "#"))] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var missing []string
	for _, h := range want {
		if !found[h] {
			missing = append(missing, h)
		}
	}
	return missing, nil
}

// GoPackageCheck closes when Dir holds a Go package with a doc.go that
// carries the package comment and exports every name in Symbols (types,
// functions, variables, constants, methods as "Type.Method").
type GoPackageCheck struct {
	Dir     string
	Symbols []string
}

// Run parses the package's non-test files.
func (c GoPackageCheck) Run(context.Context) Result {
	files, err := parsePackage(c.Dir)
	if err != nil {
		return openf("%s: %v", c.Dir, err)
	}
	doc, ok := files["doc.go"]
	if !ok || doc.Doc == nil {
		return openf("%s: no doc.go with a package comment", c.Dir)
	}
	exported := exportedNames(files)
	var missing []string
	for _, s := range c.Symbols {
		if !exported[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return openf("package %s does not export %s", doc.Name.Name, strings.Join(missing, ", "))
	}
	return closedf("package %s: doc.go, %d exported names, %d required present", doc.Name.Name, len(exported), len(c.Symbols))
}

// parsePackage parses the non-test Go files of dir, by file name.
func parsePackage(dir string) (map[string]*ast.File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files[name] = f
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go files")
	}
	return files, nil
}

func exportedNames(files map[string]*ast.File) map[string]bool {
	names := map[string]bool{}
	for _, f := range files {
		for _, decl := range f.Decls {
			addExported(names, decl)
		}
	}
	return names
}

func addExported(names map[string]bool, decl ast.Decl) {
	switch d := decl.(type) {
	case *ast.FuncDecl:
		switch {
		case !d.Name.IsExported():
		case d.Recv != nil && len(d.Recv.List) == 1:
			names[receiverName(d.Recv.List[0].Type)+"."+d.Name.Name] = true
		default:
			names[d.Name.Name] = true
		}
	case *ast.GenDecl:
		for _, spec := range d.Specs {
			switch s := spec.(type) {
			case *ast.TypeSpec:
				if s.Name.IsExported() {
					names[s.Name.Name] = true
				}
			case *ast.ValueSpec:
				for _, n := range s.Names {
					if n.IsExported() {
						names[n.Name] = true
					}
				}
			}
		}
	}
}

func receiverName(expr ast.Expr) string {
	switch t := expr.(type) {
	case *ast.StarExpr:
		return receiverName(t.X)
	case *ast.IndexExpr:
		return receiverName(t.X)
	case *ast.IndexListExpr:
		return receiverName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return ""
}

// CommandCheck closes when the command exits 0 before the check's
// deadline. The tail of its output is the evidence or the reason.
type CommandCheck struct {
	// Args is the program and its arguments, run without a shell.
	Args []string
	// Dir is the working directory. Default: the current one.
	Dir string
	// Env adds variables (NAME=value) to the inherited environment.
	Env []string
}

// Run runs the command; ctx's deadline kills it.
func (c CommandCheck) Run(ctx context.Context) Result {
	if len(c.Args) == 0 {
		return openf("no command")
	}
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.WaitDelay = time.Second // do not wait on pipes a killed child's children hold
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return openf("%s: timed out: %s", strings.Join(c.Args, " "), out.tail())
	case err != nil:
		return openf("%s: %v: %s", strings.Join(c.Args, " "), err, out.tail())
	}
	return closedf("%s: exit 0: %s", strings.Join(c.Args, " "), out.tail())
}

// tailBuffer keeps the last few lines of a command's output.
type tailBuffer struct{ buf bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if t.buf.Len() > 64<<10 {
		t.buf.Next(t.buf.Len() - 32<<10)
	}
	return len(p), nil
}

func (t *tailBuffer) tail() string {
	lines := strings.Split(strings.TrimSpace(t.buf.String()), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// HTTPCheck probes a URL. It closes when the answer has Status (default
// 200), every header in Headers (a value of "*" only asks for presence),
// every JSON field in JSON at its value (dotted paths into objects, values
// compared as their JSON text, such as "ok", "4" or "true"), and arrives
// within Budget when one is set.
type HTTPCheck struct {
	Method  string
	URL     string
	Request map[string]string
	Body    string
	Status  int
	Headers map[string]string
	JSON    map[string]string
	Budget  time.Duration
	// Client sends the request. Default: a client that does not follow
	// redirects.
	Client *http.Client
}

// Run sends the request under ctx's deadline.
func (c HTTPCheck) Run(ctx context.Context) Result {
	req, err := http.NewRequestWithContext(ctx, cmp.Or(c.Method, http.MethodGet), c.URL, strings.NewReader(c.Body))
	if err != nil {
		return openf("%v", err)
	}
	for k, v := range c.Request {
		req.Header.Set(k, v)
	}
	client := c.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return openf("%s %s: %v", req.Method, c.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	elapsed := time.Since(start)
	if err != nil {
		return openf("%s %s: reading the body: %v", req.Method, c.URL, err)
	}
	if problems := c.compare(resp, body, elapsed); len(problems) > 0 {
		return openf("%s %s: %s", req.Method, c.URL, strings.Join(problems, "; "))
	}
	return closedf("%s %s: %d in %s", req.Method, c.URL, resp.StatusCode, elapsed.Round(time.Millisecond))
}

func (c HTTPCheck) compare(resp *http.Response, body []byte, elapsed time.Duration) []string {
	var problems []string
	if want := cmp.Or(c.Status, http.StatusOK); resp.StatusCode != want {
		problems = append(problems, fmt.Sprintf("status %d, want %d", resp.StatusCode, want))
	}
	for _, name := range sortedKeys(c.Headers) {
		want, got := c.Headers[name], resp.Header.Get(name)
		if got == "" || (want != "*" && got != want) {
			problems = append(problems, fmt.Sprintf("header %s = %q, want %q", name, got, want))
		}
	}
	if len(c.JSON) > 0 {
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			return append(problems, "body is not JSON")
		}
		for _, path := range sortedKeys(c.JSON) {
			if got := jsonAt(doc, path); got != c.JSON[path] {
				problems = append(problems, fmt.Sprintf("%s = %s, want %s", path, got, c.JSON[path]))
			}
		}
	}
	if c.Budget > 0 && elapsed > c.Budget {
		problems = append(problems, fmt.Sprintf("took %s, budget %s", elapsed.Round(time.Millisecond), c.Budget))
	}
	return problems
}

// jsonAt returns the JSON text of the value at a dotted path, with strings
// unquoted, or "<missing>".
func jsonAt(doc any, path string) string {
	for _, part := range strings.Split(path, ".") {
		obj, ok := doc.(map[string]any)
		if !ok {
			return "<missing>"
		}
		if doc, ok = obj[part]; !ok {
			return "<missing>"
		}
	}
	if s, ok := doc.(string); ok {
		return s
	}
	text, _ := json.Marshal(doc)
	return string(text)
}

// Querier runs a query: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// SQLCheck runs Query on DB (or on a connection to URL). With WantRows
// set, it closes when the query returns exactly that many rows (0 for an
// audit that lists findings); otherwise when it returns one row whose
// first column is true.
type SQLCheck struct {
	DB       Querier
	URL      string
	Query    string
	WantRows *int
}

// Run runs the query under ctx's deadline.
func (c SQLCheck) Run(ctx context.Context) Result {
	db := c.DB
	if db == nil {
		if c.URL == "" {
			return openf("no database")
		}
		conn, err := pgx.Connect(ctx, c.URL)
		if err != nil {
			return openf("connect: %v", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		db = conn
	}
	rows, err := db.Query(ctx, c.Query)
	if err != nil {
		return openf("query: %v", err)
	}
	values, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		return openf("query: %v", err)
	}
	if c.WantRows != nil {
		if len(values) != *c.WantRows {
			return openf("%d rows, want %d: %s", len(values), *c.WantRows, firstRows(values))
		}
		return closedf("%d rows", len(values))
	}
	if len(values) == 1 && len(values[0]) > 0 && values[0][0] == true {
		return closedf("true")
	}
	return openf("want one row holding true, got %s", firstRows(values))
}

func firstRows(rows [][]any) string {
	var parts []string
	for _, r := range rows[:min(len(rows), 3)] {
		parts = append(parts, fmt.Sprint(r...))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

package querycheck

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
)

// Statement is one distinct statement (whitespace collapsed) and how many
// times each role sent it.
type Statement struct {
	SQL   string
	Roles map[string]int
}

// Recorder collects the statements of the pools it traces. It implements
// pgx.QueryTracer and pgx.BatchTracer; its zero value is ready to use and
// it is safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	stmts map[string]*Statement
}

var (
	_ pgx.QueryTracer = (*Recorder)(nil)
	_ pgx.BatchTracer = (*Recorder)(nil)
)

func (r *Recorder) add(conn *pgx.Conn, sql string) {
	role := ""
	if conn != nil {
		role = conn.Config().User
	}
	sql = Normalize(sql)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stmts == nil {
		r.stmts = map[string]*Statement{}
	}
	s := r.stmts[sql]
	if s == nil {
		s = &Statement{SQL: sql, Roles: map[string]int{}}
		r.stmts[sql] = s
	}
	s.Roles[role]++
}

// TraceQueryStart records data.SQL.
func (r *Recorder) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	r.add(conn, data.SQL)
	return ctx
}

// TraceQueryEnd does nothing.
func (r *Recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart does nothing: each query is recorded by TraceBatchQuery.
func (r *Recorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

// TraceBatchQuery records one query of a batch.
func (r *Recorder) TraceBatchQuery(_ context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	r.add(conn, data.SQL)
}

// TraceBatchEnd does nothing.
func (r *Recorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// Statements returns the statements recorded so far, sorted by text.
func (r *Recorder) Statements() []Statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Statement, 0, len(r.stmts))
	for _, s := range r.stmts {
		roles := make(map[string]int, len(s.Roles))
		for k, v := range s.Roles {
			roles[k] = v
		}
		out = append(out, Statement{SQL: s.SQL, Roles: roles})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SQL < out[j].SQL })
	return out
}

var (
	lineComment = regexp.MustCompile(`--[^\n]*`)
	spaces      = regexp.MustCompile(`\s+`)
)

// Normalize removes line comments and collapses white space.
func Normalize(sql string) string {
	return strings.TrimSpace(spaces.ReplaceAllString(lineComment.ReplaceAllString(sql, " "), " "))
}

// tableRef finds schema-qualified table names, quoted or not.
var tableRef = regexp.MustCompile(`(?i)"?\b(platform|dealix)"?\."?([a-z_][a-z0-9_]*)"?`)

// Tables returns the schema.table names sql refers to, among known.
func Tables(sql string, known map[string]bool) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range tableRef.FindAllStringSubmatch(stripLiterals(sql), -1) {
		name := strings.ToLower(m[1] + "." + m[2])
		if known[name] && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

var (
	// tenantValue is tenant_id compared with a parameter: tenant_id = $n,
	// tenant_id = $n::uuid, $n = tenant_id, tenant_id = ANY($n),
	// tenant_id IN ($n, …). A join of tenant_id to another table's
	// tenant_id does not fix a tenant, so it does not count.
	tenantValue = regexp.MustCompile(`(?i)\btenant_id\s*(=\s*(any\s*\(\s*)?\$\d|in\s*\(\s*\$\d)|\$\d+(::[a-z]+)?\s*=\s*([a-z_]+\.)?tenant_id\b`)
	// insertColumns is an INSERT's column list.
	insertColumns = regexp.MustCompile(`(?i)\binsert\s+into\s+[a-z_."]+(\s+as\s+[a-z_]+)?\s*\(([^)]*)\)`)
	tenantWord    = regexp.MustCompile(`(?i)\btenant_id\b`)
)

// NamesTenant reports whether sql fixes the tenant: tenant_id compared
// with a parameter in a predicate (outside string literals, SELECT lists
// and RETURNING clauses), or tenant_id in an INSERT's column list.
func NamesTenant(sql string) bool {
	clean := stripLiterals(sql)
	for _, m := range insertColumns.FindAllStringSubmatch(clean, -1) {
		if tenantWord.MatchString(m[2]) {
			return true
		}
	}
	return tenantValue.MatchString(predicates(clean))
}

// stripLiterals blanks out single-quoted literals (” escapes included).
func stripLiterals(sql string) string {
	var b strings.Builder
	in := false
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		if c == '\'' {
			if in && i+1 < len(sql) && sql[i+1] == '\'' {
				i++
				continue
			}
			in = !in
			b.WriteByte('\'')
			continue
		}
		if !in {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// predicates drops what reads values out (SELECT lists up to their FROM,
// RETURNING clauses) and keeps the rest, paren depth by paren depth.
func predicates(sql string) string {
	var b strings.Builder
	// skipping[d] is set while a SELECT list or RETURNING clause at
	// paren depth d is being dropped; what is nested deeper (a scalar
	// subquery with its own WHERE) is kept.
	skipping := map[int]string{}
	depth := 0
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '(':
			depth++
			if skipping[depth-1] == "" {
				b.WriteByte(c)
			}
			i++
			continue
		case c == ')':
			delete(skipping, depth)
			depth--
			if skipping[depth] == "" {
				b.WriteByte(c)
			}
			i++
			continue
		}
		if isWordStart(sql, i) {
			w := word(sql, i)
			switch strings.ToUpper(w) {
			case "SELECT":
				skipping[depth] = "SELECT"
				i += len(w)
				continue
			case "RETURNING":
				skipping[depth] = "RETURNING"
				i += len(w)
				continue
			case "FROM":
				if skipping[depth] == "SELECT" {
					delete(skipping, depth)
				}
			}
			if skipping[depth] == "" {
				b.WriteString(w)
			}
			i += len(w)
			continue
		}
		if skipping[depth] == "" {
			b.WriteByte(c)
		}
		i++
	}
	return b.String()
}

func isWordChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.'
}

func isWordStart(s string, i int) bool {
	return isWordChar(s[i]) && (i == 0 || !isWordChar(s[i-1]))
}

func word(s string, i int) string {
	j := i
	for j < len(s) && isWordChar(s[j]) {
		j++
	}
	return s[i:j]
}

// Exception is a statement allowed to touch a tenant table without naming
// tenant_id.
type Exception struct {
	// Match is a piece of the normalized statement that picks it out.
	Match string
	// Who sends it (package and role).
	Who string
	// Reason says why it does not, or cannot, name the tenant.
	Reason string
	// Citus says what the statement needs when the tables are distributed
	// by tenant_id.
	Citus string
}

// Finding is a statement that touches a tenant table without naming
// tenant_id and matches no exception.
type Finding struct {
	Statement Statement
	Tables    []string
}

// Check returns the statements of stmts that touch one of tenantTables
// without naming tenant_id and match none of exceptions, and for each
// exception the statements it matched.
func Check(stmts []Statement, tenantTables []string, exceptions []Exception) (findings []Finding, matched map[string][]Statement) {
	known := map[string]bool{}
	for _, t := range tenantTables {
		known[t] = true
	}
	matched = map[string][]Statement{}
	for _, s := range stmts {
		tables := Tables(s.SQL, known)
		if len(tables) == 0 || NamesTenant(s.SQL) {
			continue
		}
		ok := false
		for _, e := range exceptions {
			if strings.Contains(s.SQL, e.Match) {
				matched[e.Match] = append(matched[e.Match], s)
				ok = true
				break
			}
		}
		if !ok {
			findings = append(findings, Finding{Statement: s, Tables: tables})
		}
	}
	return findings, matched
}

package schemacheck_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
)

func TestMain(m *testing.M) {
	var fns []pgtest.MigrateFunc
	for _, fn := range server.Migrations() {
		fns = append(fns, fn)
	}
	pgtest.Main(m, pgtest.WithMigrations(fns...))
}

// schemas are where the library and the server keep their tables.
var schemas = []string{"platform", "dealix"}

// globalTables have no tenant_id, on purpose. Under Citus each becomes a
// reference table (a copy on every node, so tenant tables may refer to
// it) or stays a local table on the coordinator.
var globalTables = map[string]string{
	"platform.schema_migrations": "the migration runner's own record; Citus: local to the coordinator, where migrations run",
	"dealix.schema_migrations":   "the migration runner's own record; Citus: local to the coordinator, where migrations run",
	"dealix.plans":               "the public price list, the same for every tenant; Citus: a reference table (dealix.tenants refers to it)",
	"platform.webhooksig_deliveries": "the replay guard runs before any tenant is known (the provider calls, keyed by verifier and delivery id); " +
		"Citus: a reference table is too write-heavy, so distribute it by verifier or keep it local to the coordinator",
}

// keyExceptions are primary or unique keys of tenant tables that do not
// lead with tenant_id, by constraint or index name.
var keyExceptions = map[string]string{
	"platform.dlq_jobs_pkey": "jobs are numbered by one global sequence so workers claim across tenants in id order; " +
		"Citus: a distributed table's unique key must contain the distribution column, so the key becomes (tenant_id, id) " +
		"and the sequence stays unique per cluster (Citus hands each node its own range); claims then run per shard",
}

// sequenceColumns are tenant-table columns filled from a counter shared by
// every tenant.
var sequenceColumns = map[string]string{
	"platform.dlq_jobs.id":            "the queue's global job id (see keyExceptions); Citus: unique cluster-wide, ordered only per node",
	"platform.durable_signals.id":     "delivery order of a run's signals; the key is (tenant_id, id), so only its order is global; Citus: ordered per node, enough for one run, whose rows share a shard",
	"platform.approvals_requests.seq": "a monotonic position for paging; Citus: increasing per node, so a page cursor stays correct within one tenant's shard",
	"platform.approvals_audit.id":     "the audit trail's order; key (tenant_id, id); Citus: ordered per node, enough within a tenant",
	"dealix.model_calls.id":           "the cost ledger's order of entry; key (tenant_id, id), and a call is found by (tenant_id, call_key); Citus: ordered per node, enough within a tenant",
}

type table struct {
	name                     string // schema.table
	hasTenant, tenantNotNull bool
	rlsEnabled, rlsForced    bool
}

func TestSchemaIsReadyToShardByTenant(t *testing.T) {
	db := pgtest.New(t)
	if problems := audit(t, db.Admin); len(problems) > 0 {
		t.Errorf("the schema is not ready to shard by tenant (%d problems):\n  - %s", len(problems), strings.Join(problems, "\n  - "))
	}
}

// TestAuditFindsEachBreach adds tables that break each rule and checks
// the audit names every one: the audit above passes because the schema
// is right, not because it looks at nothing.
func TestAuditFindsEachBreach(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Admin.Exec(ctx, `
		CREATE TABLE dealix.bad_parent (tenant_id uuid NOT NULL, id uuid NOT NULL, code text NOT NULL,
			PRIMARY KEY (id), UNIQUE (code, tenant_id));
		ALTER TABLE dealix.bad_parent ENABLE ROW LEVEL SECURITY;
		CREATE TABLE dealix.bad_child (tenant_id uuid, parent uuid REFERENCES dealix.bad_parent (id),
			n bigserial, PRIMARY KEY (tenant_id, n));
		CREATE UNIQUE INDEX bad_child_parent ON dealix.bad_child (parent);
		CREATE TABLE dealix.bad_nullable (tenant_id uuid, note text);
		ALTER TABLE dealix.bad_nullable ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
		CREATE TABLE dealix.bad_global (id int PRIMARY KEY, parent uuid REFERENCES dealix.bad_parent (id));`); err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(audit(t, db.Admin), "\n")
	for _, want := range []string{
		"dealix.bad_global has no tenant_id and is not listed",
		"dealix.bad_parent: row-level security enabled true, forced false",
		"dealix.bad_child: row-level security enabled false, forced false",
		"dealix.bad_nullable.tenant_id is nullable",
		"dealix.bad_nullable has no primary key",
		"key dealix.bad_parent_pkey does not lead with tenant_id",
		"key dealix.bad_parent_code_tenant_id_key does not lead with tenant_id",
		"key dealix.bad_child_parent does not lead with tenant_id",
		"foreign key bad_child_parent_fkey [parent] -> dealix.bad_parent [id] between tenant tables does not pair tenant_id",
		"foreign key bad_global_parent_fkey: global table dealix.bad_global refers to tenant table dealix.bad_parent",
		"dealix.bad_child.n draws from a sequence shared by every tenant and is not listed",
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("audit missed %q; it reported:\n%s", want, problems)
		}
	}
}

// audit checks the catalog of db's database against the rules of the
// package doc and returns every breach, sorted.
func audit(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	ctx := context.Background()
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	used := map[string]bool{} // allowlist entries the catalog matched

	// Tables.
	rows, err := db.Query(ctx, `
		SELECT c.relnamespace::regnamespace::text || '.' || c.relname,
		       a.attname IS NOT NULL, coalesce(a.attnotnull, false),
		       c.relrowsecurity, c.relforcerowsecurity
		FROM pg_class c
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
		WHERE c.relkind IN ('r', 'p') AND c.relnamespace::regnamespace::text = ANY($1)
		ORDER BY 1`, schemas)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]table{}
	for rows.Next() {
		var tb table
		if err := rows.Scan(&tb.name, &tb.hasTenant, &tb.tenantNotNull, &tb.rlsEnabled, &tb.rlsForced); err != nil {
			t.Fatal(err)
		}
		tables[tb.name] = tb
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(tables) < 10 {
		t.Fatalf("only %d tables in %v: were the migrations applied?", len(tables), schemas)
	}
	tenantTables := 0
	for _, tb := range tables {
		if !tb.hasTenant {
			if _, ok := globalTables[tb.name]; !ok {
				fail("%s has no tenant_id and is not listed as a global table", tb.name)
			}
			used["table "+tb.name] = true
			continue
		}
		tenantTables++
		if _, ok := globalTables[tb.name]; ok {
			fail("%s is listed as global but has a tenant_id column", tb.name)
		}
		if !tb.tenantNotNull {
			fail("%s.tenant_id is nullable", tb.name)
		}
		if !tb.rlsEnabled || !tb.rlsForced {
			fail("%s: row-level security enabled %v, forced %v; want both", tb.name, tb.rlsEnabled, tb.rlsForced)
		}
	}

	// Primary keys, unique constraints, exclusion constraints and unique
	// indexes: the first column.
	rows, err = db.Query(ctx, `
		SELECT c.relnamespace::regnamespace::text || '.' || c.relname,
		       i.indexrelid::regclass::text,
		       (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]),
		       pg_get_indexdef(i.indexrelid), i.indisprimary
		FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		WHERE (i.indisunique OR i.indisexclusion) AND c.relnamespace::regnamespace::text = ANY($1)
		ORDER BY 1, 2`, schemas)
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	hasPK := map[string]bool{}
	for rows.Next() {
		var tname, index string
		var first *string
		var def string
		var primary bool
		if err := rows.Scan(&tname, &index, &first, &def, &primary); err != nil {
			t.Fatal(err)
		}
		if !tables[tname].hasTenant {
			continue
		}
		keys++
		hasPK[tname] = hasPK[tname] || primary
		if first != nil && *first == "tenant_id" {
			continue
		}
		if _, ok := keyExceptions[index]; ok {
			used["key "+index] = true
			continue
		}
		fail("%s: key %s does not lead with tenant_id: %s", tname, index, def)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for name, tb := range tables {
		if tb.hasTenant && !hasPK[name] {
			fail("%s has no primary key", name)
		}
	}

	// Foreign keys.
	rows, err = db.Query(ctx, `
		SELECT con.conname,
		       con.conrelid::regclass::text, cr.relnamespace::regnamespace::text || '.' || cr.relname,
		       cf.relnamespace::regnamespace::text || '.' || cf.relname,
		       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
		             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
		       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
		             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)
		FROM pg_constraint con
		JOIN pg_class cr ON cr.oid = con.conrelid
		JOIN pg_class cf ON cf.oid = con.confrelid
		WHERE con.contype = 'f' AND cr.relnamespace::regnamespace::text = ANY($1)
		ORDER BY 1`, schemas)
	if err != nil {
		t.Fatal(err)
	}
	fks := 0
	for rows.Next() {
		var name, shown, from, to string
		var cols, refCols []string
		if err := rows.Scan(&name, &shown, &from, &to, &cols, &refCols); err != nil {
			t.Fatal(err)
		}
		fks++
		ft, tt := tables[from], tables[to]
		switch {
		case ft.hasTenant && tt.hasTenant:
			i := slices.Index(cols, "tenant_id")
			if i < 0 || refCols[i] != "tenant_id" {
				fail("foreign key %s %v -> %s %v between tenant tables does not pair tenant_id with tenant_id", name, cols, to, refCols)
			}
		case !ft.hasTenant && tt.hasTenant:
			fail("foreign key %s: global table %s refers to tenant table %s (Citus refuses a reference table pointing into a distributed one)", name, from, to)
		}
		// A tenant table referring to a global one is fine: the global
		// one becomes a reference table, present on every node.
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if fks == 0 {
		t.Fatal("no foreign keys found: the catalog query is wrong")
	}

	// Columns drawing from a sequence.
	rows, err = db.Query(ctx, `
		SELECT c.relnamespace::regnamespace::text || '.' || c.relname || '.' || a.attname
		FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE c.relkind IN ('r', 'p') AND c.relnamespace::regnamespace::text = ANY($1)
		  AND a.attnum > 0 AND NOT a.attisdropped
		  AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%')
		ORDER BY 1`, schemas)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var col string
		if err := rows.Scan(&col); err != nil {
			t.Fatal(err)
		}
		tname := col[:strings.LastIndexByte(col, '.')]
		if !tables[tname].hasTenant {
			continue
		}
		if _, ok := sequenceColumns[col]; !ok {
			fail("%s draws from a sequence shared by every tenant and is not listed (say why it is safe, and what it becomes under Citus)", col)
			continue
		}
		used["sequence "+col] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// Every allowlist entry must still describe the catalog.
	for name := range globalTables {
		if !used["table "+name] {
			fail("globalTables lists %s, which is not a table without tenant_id any more", name)
		}
	}
	for name := range keyExceptions {
		if !used["key "+name] {
			fail("keyExceptions lists %s, which no longer breaks the rule", name)
		}
	}
	for name := range sequenceColumns {
		if !used["sequence "+name] {
			fail("sequenceColumns lists %s, which no longer draws from a sequence", name)
		}
	}

	sort.Strings(problems)
	t.Logf("%d tables (%d tenant tables), %d tenant-table keys, %d foreign keys checked", len(tables), tenantTables, keys, fks)
	return problems
}

package rls

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// BatchSender sends a pipelined batch: a pool, a connection or a pgx.Tx.
type BatchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Batch sends, after scoping to tenant, the statements queue adds as one
// pipelined batch: one round trip and, sent outside a transaction, one
// implicit transaction, so the setting holds for exactly those statements
// and their writes commit or roll back together. read reads their results
// in order (the set_config result is already consumed).
//
// Because one refused statement rolls the whole batch back, values headed
// for text or jsonb must be checked (package pgtext) before they are
// queued together with other work.
func Batch(ctx context.Context, db BatchSender, tenant string, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	b := &pgx.Batch{}
	b.Queue(SetTenantSQL, tenant)
	queue(b)
	br := db.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return fmt.Errorf("rls: set tenant: %w", err)
	}
	if read != nil {
		if err := read(br); err != nil {
			_ = br.Close()
			return err
		}
	}
	return br.Close()
}

// Query runs one query scoped to tenant in one round trip, as Batch does,
// and returns its rows. Closing the rows closes the batch; Err reports the
// implicit transaction's outcome too.
func Query(ctx context.Context, db BatchSender, tenant, sql string, args ...any) (pgx.Rows, error) {
	b := &pgx.Batch{}
	b.Queue(SetTenantSQL, tenant)
	b.Queue(sql, args...)
	br := db.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("rls: set tenant: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, batch: br}, nil
}

// batchRows closes its batch with its rows, and reports the batch's error
// (the implicit transaction's commit) as its own.
type batchRows struct {
	pgx.Rows
	batch    pgx.BatchResults
	closed   bool
	closeErr error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.closeErr = r.batch.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.closeErr
}

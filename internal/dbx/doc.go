// Package dbx declares the one database interface the library's
// constructors take.
//
// It is the part of *pgxpool.Pool the packages call, in pgx's style of
// declaring the smallest interface at the point of use: a pool, a
// wrapped pool or a *pgx.Conn satisfies it. Packages re-export it as their
// own DB type (an alias), so a caller can name it without importing an
// internal package.
package dbx

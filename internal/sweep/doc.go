// Package sweep holds what the library's background maintenance shares:
// working off a backlog in bounded batches (Drain) and repeating a sweep
// at an interval until its context ends (Every). The SQL of each sweep
// stays with the package that owns the table.
package sweep

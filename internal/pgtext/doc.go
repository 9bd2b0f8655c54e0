// Package pgtext checks and cleans values on their way into PostgreSQL
// text and jsonb columns.
//
// PostgreSQL refuses the NUL character in both (jsonb refuses the JSON
// escape \u0000 as well), and text refuses invalid UTF-8. A refused value
// fails its statement, and in a pipelined batch shared with other work the
// whole batch rolls back, so values are checked (or, for error texts,
// cleaned) before they are queued.
package pgtext

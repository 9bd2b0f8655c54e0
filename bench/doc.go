// Package bench compares the library with the peer libraries a Go team
// would otherwise stitch together (dlq with River, durable with the DBOS
// Go SDK, webhooksig with stripe-go and the Standard Webhooks library),
// for correctness (each side accepts what the other signs, each queue
// completes every job) and for speed, side by side in one run on one
// PostgreSQL; and it measures how the library's costs grow as its tables
// fill up, publishing each curve with WriteCurve for cmd/charts to draw.
// It is a module of its own so the library never depends on a peer.
//
// README.md holds the table of every comparison with the command that
// reproduces it, the growth charts, and the machine and PostgreSQL
// settings to state beside the figures. For example:
//
//	cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkThreeSteps -benchtime 10000x -count 3
//	cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkQueue -benchtime 1x -count 3 -v
//	cd bench && go run ./cmd/charts
//
// The smoke form, which checks that every benchmark still runs (not its
// speed), with tiny sizes and without writing results:
//
//	cd bench && GOFLAGS=-mod=mod go test -short -run '^$' -bench . -benchtime 1x
package bench

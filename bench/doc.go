// Package bench compares the library with the peer libraries a Go team
// would otherwise stitch together, for correctness (each side accepts what
// the other signs, each queue completes every job) and for speed (go test
// -bench). It is a module of its own so the library never depends on a
// peer.
//
//	cd bench && go test -run . -bench 'Standard|Stripe|BareHMAC' -benchtime 20000x -count 6
//
// The queue benchmarks (dlq against River) start a PostgreSQL container
// through internal/pgtest and do one full run of 50,000 jobs per side per
// iteration, so they take -benchtime 1x:
//
//	cd bench && go test -run '^$' -bench BenchmarkQueue -benchtime 1x -count 3
//
// The workflow benchmark (durable against the DBOS Go SDK) runs three no-op
// steps from 16 goroutines, every checkpoint committed before the next
// step, and reports workflows/s, steps/s and p50/p99 per workflow:
//
//	cd bench && go test -run '^$' -bench BenchmarkThreeSteps -benchtime 2000x -count 2
package bench

// Package bench compares the library with the peer libraries a Go team
// would otherwise stitch together, for correctness (each side accepts what
// the other signs) and for speed (go test -bench). It is a module of its
// own so the library never depends on a peer.
//
//	cd bench && go test -run . -bench . -benchtime 20000x -count 6
package bench

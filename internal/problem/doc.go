// Package problem writes RFC 9457 "Problem Details for HTTP APIs" responses.
//
// Every middleware and handler of the library reports errors through this
// package, so a client always receives the same shape: a JSON object with
// the members type, title, status, detail and instance, plus any extension
// members, served as application/problem+json with a 4xx or 5xx status.
//
//	problem.Write(w, problem.New(http.StatusUnauthorized,
//		problem.WithDetail("the bearer token has expired")))
//
// Extension members sit beside the standard members at the top level of
// the object, as RFC 9457 section 3.2 describes; a name that collides with a
// standard member is refused rather than silently overwriting it.
package problem

// Package webhooksig verifies inbound webhooks: HubSpot (v3, and v1/v2 on
// request), Calendly, Moyasar, Stripe, GitHub, Slack and Standard Webhooks,
// with several active secrets per verifier for rotation, an injectable
// clock, configurable timestamp tolerance and constant-time comparison
// everywhere, plus a PostgreSQL replay guard.
//
// # Shape
//
// As with net/http's CrossOriginProtection, the check is split from its
// HTTP adapter. A Verifier is the pure check: Verify(*Message) looks only at
// what the scheme signs (headers, the raw body, and the method and URL for
// HubSpot) and returns a Delivery (verifier name, delivery id, signed
// timestamp) or an *Error wrapping one sentinel per failed check:
//
//	ErrMissingHeader, ErrMalformedHeader, ErrMalformedBody  -> 400
//	ErrBadSignature, ErrStaleTimestamp, ErrUnknownKey       -> 401
//	ErrBodyTooLarge                                         -> 413
//	ErrReplayed                                             -> 409
//
// An error's text names the verifier, the field and the check, never a
// secret, a received signature or an expected one. StatusCode maps an error
// to its status.
//
// Middleware is the adapter: it reads the body up to Config.MaxBodyBytes,
// verifies, answers a failure with an RFC 9457 application/problem+json
// body, and hands a verified request on with its body intact and its
// Delivery in the context (DeliveryFromContext).
//
//	v, err := webhooksig.NewStripe(webhooksig.StripeConfig{
//		Secrets: []string{os.Getenv("STRIPE_WHSEC"), os.Getenv("STRIPE_WHSEC_OLD")},
//	})
//	...
//	mw, err := webhooksig.New(v, webhooksig.Config{Replay: store})
//	...
//	mux.Handle("POST /hooks/stripe", mw.Handler(stripeEvents))
//
// # Schemes
//
//   - GitHub: X-Hub-Signature-256 "sha256=<hex HMAC(body)>". No timestamp;
//     the delivery id is X-GitHub-Delivery, which GitHub does not sign.
//   - Stripe: Stripe-Signature "t=<unix>,v1=<hex>[,v1=…]" over "<t>.<body>",
//     tolerance 300 s; the delivery id is the event's "id".
//   - Standard Webhooks: webhook-id, webhook-timestamp and a space-separated
//     "v1,<base64>" list over "<id>.<timestamp>.<body>", "whsec_" base64
//     secrets, tolerance 5 minutes; the delivery id is webhook-id.
//   - Slack: X-Slack-Signature "v0=<hex>" over "v0:<ts>:<body>" with
//     X-Slack-Request-Timestamp, tolerance 5 minutes.
//   - Calendly: Calendly-Webhook-Signature "t=<unix>,v1=<hex>" over
//     "<t>.<body>", tolerance 3 minutes.
//   - Moyasar: no signature; the body's "secret_token" must equal a
//     configured token (compared through SHA-256 digests in constant time);
//     the delivery id is the event's "id".
//   - HubSpot v3: X-HubSpot-Signature-v3, base64 HMAC over method + URI +
//     body + X-HubSpot-Request-Timestamp (milliseconds), with the URI's
//     documented percent-encodings decoded first (HubSpotDecodeURI);
//     tolerance 5 minutes. With HubSpotConfig.Legacy, v1 (hex SHA-256 of
//     secret + body) and v2 (secret + method + URI + body) too.
//
// Timestamps are rejected when older or newer than the tolerance. Schemes
// without a delivery id use a digest of the verified signature, which is
// unique per timestamp and body. Every scheme has a signing helper
// (SignGitHub, SignStripe, SignStandard, SignSlack, SignCalendly,
// SignMoyasar, SignHubSpotV3, SignHubSpotV1, SignHubSpotV2) for tests and
// for sending webhooks.
//
// HubSpot signs the URL it called. Behind a proxy the server sees another
// one, so Config.URL rebuilds it; the default is "https://" + Host +
// request URI.
//
// # Replay guard
//
// A timestamp bounds how long a captured request stays valid; the replay
// guard closes that window and makes processing once-only. With
// Config.Replay set, the middleware claims (verifier, delivery id) in
// platform.webhooksig_deliveries before calling the handler. A second
// claim of the same id within Config.ReplayTTL is answered 409 Conflict
// (RejectReplay) or 200 OK without calling the handler (AcknowledgeReplay).
// A claim is one INSERT … ON CONFLICT, so of two concurrent deliveries of
// one id exactly one is processed. When the handler answers 5xx or panics
// the claim is released, so the sender's retry is processed.
//
// The middleware's claim commits before the handler runs, so a process that
// dies in the handler leaves the id claimed and the sender's retries are
// refused until the TTL ends. Where that matters, leave Config.Replay unset
// and claim in the handler's own transaction; the claim then commits or
// rolls back with the handler's writes, and a concurrent duplicate waits
// for that transaction to end:
//
//	d, _ := webhooksig.DeliveryFromContext(r.Context())
//	tx, err := pool.Begin(ctx)
//	...
//	first, err := store.ClaimTx(ctx, tx, d.Verifier, d.ID, 72*time.Hour)
//	if !first { /* already processed: acknowledge */ }
//	... the handler's writes in tx ...
//	err = tx.Commit(ctx)
//
// Run ReplayStore.Sweep periodically to delete expired claims.
//
// The table is not tenant-scoped and has no row-level security: a webhook
// is verified before any tenant is known (the provider calls, not a
// tenant's user), and delivery ids are unique per verifier, the table's
// key. It holds no tenant data, only ids and times. The serving role needs
// SELECT, INSERT, UPDATE and DELETE on it; Migrate creates it in schema
// platform.
package webhooksig

package telemetry_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/dealix/platform/telemetry"
)

// A service wires Init once, the middleware around its routes and the log
// handler around its logger. Without OTEL_* variables it runs on no-op
// providers; correlation ids still flow to clients and logs.
func ExampleMiddleware() {
	logger := slog.New(telemetry.NewLogHandler(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the example's output stable
			}
			return a
		},
	}), nil))

	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "order placed")
		w.WriteHeader(http.StatusCreated)
	})
	srv := httptest.NewServer(telemetry.Middleware()(mux))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders", nil)
	req.Header.Set("X-Correlation-ID", "checkout-7f3a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("X-Correlation-ID"))
	// Output:
	// level=INFO msg="order placed" correlation_id=checkout-7f3a
	// 201 checkout-7f3a
}

// Execute wraps a gateway call in a span that carries the correlation id.
func ExampleExecute() {
	ctx := telemetry.WithCorrelationID(context.Background(), "case-12")
	sent, err := telemetry.Execute(ctx, "gateway.execute", func(ctx context.Context) (int, error) {
		fmt.Println("sending for", telemetry.CorrelationID(ctx))
		return 3, nil
	})
	fmt.Println(sent, err)
	// Output:
	// sending for case-12
	// 3 <nil>
}

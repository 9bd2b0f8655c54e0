package problem_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/dealix/platform/internal/problem"
)

func ExampleWrite() {
	rec := httptest.NewRecorder()
	_ = problem.Write(rec, problem.Details{
		Status:     http.StatusUnprocessableEntity,
		Detail:     "the Idempotency-Key was used with a different request",
		Extensions: map[string]any{"key": "order-42"},
	})
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Println(rec.Body.String())
	// Output:
	// 422 application/problem+json
	// {"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"the Idempotency-Key was used with a different request","key":"order-42"}
}

package dlq

import (
	"encoding/json"
	"testing"
)

// claimsJSON must be the object the completion looks claim counts up in.
func TestClaimsJSON(t *testing.T) {
	for _, tc := range []struct {
		ids, claims []int64
		want        map[string]int64
	}{
		{[]int64{7}, []int64{1}, map[string]int64{"7": 1}},
		{[]int64{9223372036854775807, 1, 42}, []int64{3, 9223372036854775807, 0}, map[string]int64{"9223372036854775807": 3, "1": 9223372036854775807, "42": 0}},
	} {
		var got map[string]int64
		if err := json.Unmarshal(claimsJSON(tc.ids, tc.claims), &got); err != nil {
			t.Fatalf("%s: %v", claimsJSON(tc.ids, tc.claims), err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("got %v, want %v", got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		}
	}
}

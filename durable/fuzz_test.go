package durable_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
)

func FuzzDecodeCursor(f *testing.F) {
	f.Add(durable.EncodeCursor(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), "order-42"))
	f.Add(durable.EncodeCursor(time.Unix(0, 0), "x|y"))
	f.Add("")
	f.Add("!!")
	f.Add("MTIz")     // "123": no separator
	f.Add("LTF8eA")   // "-1|x"
	f.Add("MXw")      // "1|": empty id
	f.Add("YWJjfGlk") // "abc|id"
	f.Add("MXwJdGFi") // "1|\ttab"
	f.Fuzz(func(t *testing.T, cursor string) {
		at, id, err := durable.DecodeCursor(cursor)
		if err != nil {
			require.True(t, errors.Is(err, durable.ErrInvalidCursor), "%v", err)
			return
		}
		require.NoError(t, durable.ValidateRunID(id))
		again, id2, err := durable.DecodeCursor(durable.EncodeCursor(at, id))
		require.NoError(t, err)
		require.True(t, at.Equal(again))
		require.Equal(t, id, id2)
	})
}

func FuzzValidateRunID(f *testing.F) {
	for _, seed := range []string{"order-42", "", "a\x00b", "tab\t", "héllo", "\xff", strings.Repeat("x", 200), strings.Repeat("x", 201), "日本"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := durable.ValidateRunID(id)
		if err != nil {
			require.ErrorIs(t, err, durable.ErrInvalidRunID)
			return
		}
		require.True(t, utf8.ValidString(id))
		require.NotEmpty(t, id)
		require.LessOrEqual(t, len(id), 200)
		require.False(t, strings.ContainsAny(id, "\x00\t\n\r"))
	})
}

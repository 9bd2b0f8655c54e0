package pgtext_test

import (
	"testing"

	"github.com/dealix/platform/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

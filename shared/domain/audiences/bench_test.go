package audiences

import (
	"fmt"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/domain/segments"
)

// BenchmarkPlan200kChanges builds the rows of 200,000 adds to the value-based vip audience
// (every identifier known) and plans their requests with the default caps: rows per request
// (issue target >= 9,500 on average) and requests per 1,000,000 changes (target <= 101).
func BenchmarkPlan200kChanges(b *testing.B) {
	vip, _ := sample(b).Audience("vip")
	const n = 200_000
	states := make([]segments.State, n)
	keys := make([]string, n)
	ps, err := identity.NewPseudonymizer([]byte("benchmark-pepper-0123456789"))
	if err != nil {
		b.Fatal(err)
	}
	norm := identity.NewNormalizer()
	for i := range states {
		em, _ := norm.HashField(identity.Email, fmt.Sprintf("user%d@example.com", i), "")
		ph, _ := norm.HashField(identity.Phone, fmt.Sprintf("1555%07d", i), "")
		states[i] = segments.State{
			Consent:     segments.Consent{At: 1},
			Email:       segments.HashedID{Hash: em, At: 1},
			Phone:       segments.HashedID{Hash: ph, At: 1},
			MADID:       segments.AdvertisingID{ID: fmt.Sprintf("6D92078A-8246-4BA4-AE5B-%012d", i), At: 1},
			ValueMicros: int64(200_000_000 + i*1_250_000),
		}
		keys[i] = ps.UserKey("sample-shop", identity.KindAppUserID, fmt.Sprint("u-", i))
	}
	schema := vip.Schema()
	rows := make([][]string, 0, n)
	var chunks [][][]string
	b.ReportAllocs()
	for b.Loop() {
		rows = rows[:0]
		for i := range states {
			if row, ok := vip.Row(keys[i], &states[i]); ok {
				rows = append(rows, row)
			}
		}
		chunks = Chunk(rows, schema, MaxRows, MaxPayloadBytes)
	}
	b.ReportMetric(float64(len(rows))/float64(len(chunks)), "rows/request")
	b.ReportMetric(float64(len(chunks))*1_000_000/n, "requests/1M")
	b.ReportMetric(float64(PayloadSize(schema, chunks[0])), "bytes/request")
}

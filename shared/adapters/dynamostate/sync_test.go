package dynamostate

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/retarget-dev/retarget/shared/ports"
)

// TestSyncItemLayout pins the attributes of the lease and audience items.
func TestSyncItemLayout(t *testing.T) {
	client := dynalite(t)
	table := freshTable(t, client)
	s := New(client, table, Options{})
	ctx := context.Background()
	raw := func(pk, sk string) string {
		t.Helper()
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key(pk, sk), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		return describe(out.Item)
	}

	now := time.UnixMilli(1_773_144_000_123)
	if ok, err := s.AcquireLease(ctx, "shop", "run-1", now, now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("AcquireLease = %v, %v", ok, err)
	}
	if got, want := raw("sync#shop", "lease"), "holder=S:run-1 pk=S:sync#shop sk=S:lease until=N:1773144060123"; got != want {
		t.Errorf("lease item =\n  %s\nwant\n  %s", got, want)
	}

	full := ports.AudienceSyncState{
		App: "shop", Segment: "vip", AudienceID: "238", Size: 12, LastSyncAt: 1_773_144_000, SessionID: 77,
		Op: "add", BatchesDone: 3, Plan: "h1", SessionStartedAt: 1_773_143_000, Version: 1,
	}
	if err := s.PutAudienceState(ctx, full); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAudienceState(ctx, ports.AudienceSyncState{App: "shop", Segment: "bare", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if got, want := raw("sync#shop", "aud#vip"), "aid=S:238 batches=N:3 lastSync=N:1773144000 op=S:add pk=S:sync#shop "+
		"plan=S:h1 sess=N:77 sessAt=N:1773143000 size=N:12 sk=S:aud#vip ver=N:1"; got != want {
		t.Errorf("audience item =\n  %s\nwant\n  %s", got, want)
	}
	if got, want := raw("sync#shop", "aud#bare"), "pk=S:sync#shop sk=S:aud#bare ver=N:1"; got != want {
		t.Errorf("bare audience item =\n  %s\nwant\n  %s", got, want)
	}
}

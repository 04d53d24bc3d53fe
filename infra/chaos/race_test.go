package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/memstate"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/appconfig"
	"github.com/retarget-dev/retarget/shared/appevent"
	"github.com/retarget-dev/retarget/shared/audiences"
	"github.com/retarget-dev/retarget/shared/audiencesync"
	"github.com/retarget-dev/retarget/shared/identity"
	"github.com/retarget-dev/retarget/shared/ingestapi/ingesttest"
	"github.com/retarget-dev/retarget/shared/metasandbox"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/segments"
	"github.com/retarget-dev/retarget/shared/segmentupdater"
)

// gatedStore holds the first PutUser until released, as a slow or throttled write does: the
// segment updater has recorded the membership changes and not yet written the state.
type gatedStore struct {
	*memstate.Store
	once    sync.Once
	reached chan struct{} // closed when the first PutUser is called
	release chan struct{} // the first PutUser proceeds once this is closed
}

func (g *gatedStore) PutUser(ctx context.Context, rec ports.UserRecord) error {
	g.once.Do(func() {
		close(g.reached)
		<-g.release
	})
	return g.Store.PutUser(ctx, rec)
}

// TestAudienceSyncBetweenChangeAndState replays, step by step, the interleaving the chaos test
// meets under DynamoDB throttling: the updater records a "joined new_installer" change, its
// state write is delayed, an audience sync runs meanwhile, then the state write lands. Every
// later sync must still put the user into the audience. No emulator is needed.
func TestAudienceSyncBetweenChangeAndState(t *testing.T) {
	apps, err := appconfig.Load(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	app := &apps.Apps[0]
	rules, err := segments.ForConfig(apps)
	if err != nil {
		t.Fatal(err)
	}
	aa, err := audiences.ForConfig(apps)
	if err != nil {
		t.Fatal(err)
	}
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: metaToken, AppSecret: metaSecret,
		Datasets: []string{app.Meta.DatasetID}, AdAccounts: []string{app.Meta.AdAccountID}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()

	mem := memstate.New()
	gated := &gatedStore{Store: mem, reached: make(chan struct{}), release: make(chan struct{})}
	updater, err := segmentupdater.New(segmentupdater.Config{Rules: rules, Store: gated})
	if err != nil {
		t.Fatal(err)
	}
	syncer, err := audiencesync.New(audiencesync.Config{Audiences: aa, Users: mem, State: mem,
		Meta: metagraph.New(metagraph.Config{BaseURL: url, AccessToken: metaToken, AppSecret: metaSecret})})
	if err != nil {
		t.Fatal(err)
	}

	// One new user: an install an hour ago makes them a new_installer.
	now := time.Now()
	body, _ := json.Marshal(map[string]any{"events": []any{map[string]any{
		"event_id": "race-1", "event_name": "MobileAppInstall", "event_time": now.Add(-time.Hour).Unix(),
		"user":    map[string]any{"app_user_id": "race-u-1", "email": "race@example.com"},
		"device":  map[string]any{"platform": "android", "os_version": "14"},
		"consent": map[string]any{"ads_personalization": true},
	}}})
	pseudo, _ := identity.NewPseudonymizer([]byte(pepper))
	batch, err := appevent.NewParser(pseudo).Parse(app, string(body), now)
	if err != nil || len(batch.Accepted) != 1 {
		t.Fatalf("parse: %v %+v", err, batch)
	}
	uk := batch.Accepted[0].UserKey
	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{{EventID: "shardId-000000000000:1",
		Kinesis: events.KinesisRecord{SequenceNumber: "1", PartitionKey: uk, Data: append([]byte(nil), batch.Accepted[0].Data...)}}}}
	batch.Release()

	ctx := context.Background()
	handled := make(chan error, 1)
	go func() {
		resp, err := updater.Handle(ctx, ev)
		if err == nil && len(resp.BatchItemFailures) > 0 {
			err = fmt.Errorf("batch item failures %v", resp.BatchItemFailures)
		}
		handled <- err
	}()
	select {
	case <-gated.reached: // changes recorded, state write in flight
	case err := <-handled:
		t.Fatalf("the updater returned (%v) without writing the user's state", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the updater never wrote the user's state")
	}
	if _, err := syncer.Run(ctx); err != nil {
		t.Fatalf("sync while the state write is in flight: %v", err)
	}
	close(gated.release)
	if err := <-handled; err != nil {
		t.Fatalf("updater: %v", err)
	}
	for range 3 { // the next scheduled runs
		if _, err := syncer.Run(ctx); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}

	rec, _, _ := mem.GetUser(ctx, app.ID, uk)
	if !slices.Contains(rec.Segments, "new_installer") {
		t.Fatalf("the user's stored segments are %v; the scenario needs new_installer", rec.Segments)
	}
	pending, _, _ := mem.PendingChanges(ctx, app.ID, "new_installer", "", 10)
	st, _, _ := mem.GetAudienceState(ctx, app.ID, "new_installer")
	if _, member := sb.AudienceMembers(st.AudienceID)[uk]; !member {
		t.Errorf("the user is in segment new_installer but not in its audience at Meta after the later syncs, "+
			"and %d changes are pending: the sync reconciled the change against the state it read before the "+
			"updater wrote it (a removal), marked it synced, and nothing brings the user in. Meta's audience "+
			"requests: %v", len(pending), audienceCalls(sb))
	}
}

// audienceCalls lists the sandbox's Custom Audience calls: method, rows, status.
func audienceCalls(sb *metasandbox.Sandbox) []string {
	var out []string
	for _, r := range sb.Requests() {
		if r.AudienceID != "" || r.AdAccount != "" {
			out = append(out, fmt.Sprintf("%s %s rows=%d status=%d", r.Method, r.Path, r.Rows, r.Status))
		}
	}
	return out
}

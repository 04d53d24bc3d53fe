package insights

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/adapters/observability"
	"github.com/retarget-dev/retarget/shared/app/audit"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/testkit/memstate"
)

// TestMisuseAuditAgainstTheSandbox: the run built as the function builds it (the Graph API
// client as its AdsAPI, nothing else) audits after the pull: an audience shared with an
// account outside the config is an ALERT and AudienceMisuseFindings 1.
func TestMisuseAuditAgainstTheSandbox(t *testing.T) {
	const token, secret = "sandbox-token", "sandbox-secret"
	sb, url, err := metasandbox.Start(metasandbox.Config{AccessToken: token, AppSecret: secret, Version: metaversions.DefaultMarketing,
		AdAccounts: []string{"act_1", "act_999"}, RemovalMinSize: -1, Ads: metasandbox.AdsConfig{AutoAdSets: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	graph := metagraph.New(metagraph.Config{BaseURL: url, Version: metaversions.DefaultMarketing, AccessToken: token, AppSecret: secret})
	ctx := context.Background()
	state := memstate.New()
	ids := map[string]string{}
	for _, a := range [][2]string{{"cart_abandoner", "Carts"}, {"cart_abandoner" + HoldoutKeySuffix, "Carts (holdout)"}} {
		id, err := graph.CreateAudience(ctx, ports.NewAudience{AdAccountID: "act_1", Name: a[1]})
		if err != nil {
			t.Fatal(err)
		}
		ids[a[0]] = id
		if err := state.PutAudienceState(ctx, ports.AudienceSyncState{App: "shop", Segment: a[0], AudienceID: id, Size: 1500, Version: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sb.ShareAudience(ids["cart_abandoner"], "act_999", ""); err != nil {
		t.Fatal(err)
	}
	cfg := &appconfig.Config{Apps: []appconfig.App{{ID: "shop", Meta: appconfig.Meta{AdAccountID: "act_1"},
		Audiences: []appconfig.Audience{{Segment: "cart_abandoner", Name: "Carts", Create: true}}}}}
	var logs, metrics bytes.Buffer
	r, err := New(Config{Apps: cfg, Sync: state, Spend: state, Meta: graph, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Metrics: observability.NewEmitter(&metrics, "Retarget"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	reps, err := r.Run(ctx, Request{Days: 1})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(reps) != 1 || len(reps[0].Misuse) != 1 || reps[0].Misuse[0].Kind != audit.KindHeldByForeignAccount || reps[0].Misuse[0].AdAccountID != "act_999" {
		t.Fatalf("misuse %+v, want act_999 holding the cart audience", reps)
	}
	alerts := alertLines(t, logs.String())
	if len(alerts) != 1 || alerts[0]["kind"] != audit.KindHeldByForeignAccount || alerts[0]["audience_id"] != ids["cart_abandoner"] {
		t.Errorf("alerts %v", alerts)
	}
	if got := emf(t, metrics.String(), "cart_abandoner")[MetricAudienceMisuseFindings]; got != 1 {
		t.Errorf("%s = %v, want 1", MetricAudienceMisuseFindings, got)
	}
}

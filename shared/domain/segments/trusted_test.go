package segments

import (
	"slices"
	"testing"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

func serverSent(e *envelope.Event) { e.Server = true }

// With trusted_values "server" only server-sent purchases and subscriptions feed value rules;
// the app's own still count as events. With the default both count.
func TestTrustedValues(t *testing.T) {
	now := t0.Add(hour)
	purchase := func(opts ...func(*envelope.Event)) *envelope.Event {
		return ev(EventPurchase, t0, append([]func(*envelope.Event){value(10_000, "USD")}, opts...)...)
	}
	subscribe := func(opts ...func(*envelope.Event)) *envelope.Event {
		return ev(EventSubscribe, t0, append([]func(*envelope.Event){expires(t0.Add(30 * minute))}, opts...)...)
	}
	for _, tt := range []struct {
		trusted string
		server  bool
		wantVIP bool
	}{
		{"", false, true},
		{appconfig.TrustedValuesAny, false, true},
		{appconfig.TrustedValuesAny, true, true},
		{appconfig.TrustedValuesServer, false, false},
		{appconfig.TrustedValuesServer, true, true},
	} {
		app := *sampleApp(t)
		app.TrustedValues = tt.trusted
		r, err := Compile(&app)
		if err != nil {
			t.Fatal(err)
		}
		var opts []func(*envelope.Event)
		if tt.server {
			opts = append(opts, serverSent)
		}
		s := fold(r, purchase(opts...), subscribe(opts...))
		segs, _ := r.Evaluate(s, now)
		if got := slices.Contains(segs, "vip"); got != tt.wantVIP {
			t.Errorf("trusted_values %q, server %v: vip = %v, want %v (ltv %v, segments %v)", tt.trusted, tt.server, got, tt.wantVIP, s.LifetimeValue(), segs)
		}
		wantBuys, wantExp := int64(0), int64(0)
		if tt.wantVIP {
			wantBuys, wantExp = 1, t0.Add(30*minute).Unix()
		}
		if s.Purchases != wantBuys || s.Subscription.ExpiresAt != wantExp {
			t.Errorf("trusted_values %q, server %v: purchases %d, subscription %+v", tt.trusted, tt.server, s.Purchases, s.Subscription)
		}
		// Either way the purchase is an event: its time is kept and the user was seen.
		if s.LastTime(EventPurchase) != t0.Unix() || s.FirstSeen != t0.Unix() {
			t.Errorf("trusted_values %q, server %v: purchase not kept as an event: %s", tt.trusted, tt.server, encode(t, s))
		}
	}
}

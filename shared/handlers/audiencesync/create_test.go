package audiencesync

import (
	"context"
	"testing"
)

// A create whose answer was lost (Meta made the audience, the sync never stored its id) is not
// repeated: the next run finds the audience by name and uploads to it, and the ad account holds
// one audience of that name, not two.
func TestCreateAfterLostAnswerMakesNoDuplicate(t *testing.T) {
	h := newHarness(t)
	a, _ := h.aa[h.app].Audience("cart_abandoner")
	lost, err := h.meta.CreateAudience(context.Background(), a.Creation()) // its answer "lost": not stored
	if err != nil {
		t.Fatal(err)
	}
	h.user(t, "u0", nil, []string{"cart_abandoner"}, 0)
	h.run(t, h.syncer(t, nil))
	id, members := h.audience(t, "cart_abandoner")
	named := 0
	for _, info := range h.sandbox.Audiences() {
		if info.Name == a.Name() {
			named++
		}
	}
	if id != lost || named != 1 || len(members) != 1 {
		t.Fatalf("sync uploaded to %s (created earlier: %s); %d audiences named %q; %d members", id, lost, named, a.Name(), len(members))
	}
}

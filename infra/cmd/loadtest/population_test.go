package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/runtime/env"
	"github.com/retarget-dev/retarget/shared/testkit/ingesttest"
)

func sampleApp(t *testing.T) *appconfig.App {
	t.Helper()
	cfg, err := env.LoadApps(filepath.Join(ingesttest.RepoRoot(t), "infra", "config", "apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &cfg.Apps[0]
}

func testPopulation(app *appconfig.App) *Population {
	var platforms []string
	for _, p := range app.Platforms {
		platforms = append(platforms, string(p))
	}
	return &Population{Size: 10_000, S: 1.1, V: 10, ConsentRate: 0.93, Seed: 7, Platforms: platforms}
}

// TestGeneratedEventsAreValid runs every generated request through the real request parser of
// the ingest function: a load test that sends invalid events measures the wrong thing.
func TestGeneratedEventsAreValid(t *testing.T) {
	app := sampleApp(t)
	pseudo, err := identity.NewPseudonymizer([]byte("loadtest-test-pepper-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	parser := appevent.NewParser(pseudo)
	for _, shape := range []RequestShape{ShapeDevice, ShapeMixed} {
		t.Run(string(shape), func(t *testing.T) {
			gen, err := NewGenerator(testPopulation(app), 20, shape, "lt-test")
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			ids := map[string]bool{}
			withEmail, consented, total := 0, 0, 0
			for i := 0; i < 300; i++ {
				req := gen.Next(now)
				if len(req.Events) != 20 || len(req.Consented) != 20 || len(req.Users) != 20 {
					t.Fatalf("request %d: %d events", i, len(req.Events))
				}
				batch, err := parser.Parse(app, string(req.Body), now)
				if err != nil {
					t.Fatalf("request %d: %v\n%s", i, err, req.Body)
				}
				if len(batch.Rejected) > 0 {
					r := batch.Rejected[0]
					t.Fatalf("request %d: event %d rejected: %+v\n%s", i, r.Index, r.Errors, req.Body)
				}
				envs, err := batch.Events()
				if err != nil {
					t.Fatal(err)
				}
				for j := range batch.Accepted {
					env := &envs[j]
					total++
					if req.Consented[j] != (env.Event.Consent.AdsPersonalization == envelope.True) {
						t.Fatalf("event %s: Consented %v, stream consent %v", env.Event.ID, req.Consented[j], env.Event.Consent.AdsPersonalization)
					}
					if req.Consented[j] {
						consented++
						if env.Event.User.Email != ([32]byte{}) {
							withEmail++
						}
					}
					if ids[env.Event.ID] {
						t.Fatalf("event_id %s twice", env.Event.ID)
					}
					ids[env.Event.ID] = true
					if !strings.HasPrefix(env.Event.ID, "lt-test-") {
						t.Fatalf("event_id %s lacks the run prefix", env.Event.ID)
					}
				}
				batch.Release()
			}
			if total != 300*20 {
				t.Errorf("%d events on the stream, want %d", total, 300*20)
			}
			// Consent is per user and the heavy users weigh more, so allow some spread.
			if share := float64(consented) / float64(total); share < 0.85 || share > 0.99 {
				t.Errorf("consented share %.3f, want about 0.93", share)
			}
			if share := float64(withEmail) / float64(consented); share < 0.4 || share > 0.8 {
				t.Errorf("hashed e-mail on %.2f of consented events, want about 0.63 (70%% logged in x 90%%)", share)
			}
		})
	}
}

func TestGeneratorEventMix(t *testing.T) {
	gen, err := NewGenerator(testPopulation(sampleApp(t)), 20, ShapeDevice, "lt-mix")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	const requests = 2000
	now := time.Now()
	for i := 0; i < requests; i++ {
		req := gen.Next(now)
		for _, e := range req.Events {
			counts[e.EventName]++
			if e.EventName == "fb_mobile_purchase" && (e.Custom == nil || e.Custom.Value == nil || e.Custom.Currency == "") {
				t.Fatalf("purchase without value and currency: %+v", e.Custom)
			}
		}
	}
	n := float64(requests * 20)
	for _, m := range eventMix {
		got := float64(counts[m.Name]) / n
		// 40,000 draws: the standard error of a 1% share is 0.05 points.
		if math.Abs(got-m.Share) > 0.01+m.Share*0.1 {
			t.Errorf("%s: share %.4f, want %.4f", m.Name, got, m.Share)
		}
	}
	if len(counts) != len(eventMix) {
		t.Errorf("names drawn %v, want the %d of the mix", counts, len(eventMix))
	}
}

// TestZipfShape checks the users' request frequencies against the law P(k) ~ (v+k)^-s.
func TestZipfShape(t *testing.T) {
	pop := testPopulation(sampleApp(t))
	gen, err := NewGenerator(pop, 1, ShapeDevice, "lt-zipf")
	if err != nil {
		t.Fatal(err)
	}
	const draws = 200_000
	freq := make([]int, pop.Size)
	now := time.Now()
	for i := 0; i < draws; i++ {
		freq[gen.Next(now).Users[0]]++
	}
	// Exact probabilities of the law, normalised over the population.
	var norm float64
	for k := 0; k < pop.Size; k++ {
		norm += math.Pow(pop.V+float64(k), -pop.S)
	}
	for _, k := range []int{0, 1, 5, 20, 100} {
		want := draws * math.Pow(pop.V+float64(k), -pop.S) / norm
		if got := float64(freq[k]); math.Abs(got-want) > 5*math.Sqrt(want)+0.02*want {
			t.Errorf("user %d drawn %v times, want %.0f", k, got, want)
		}
	}
	// The head is heavy and the tail long: the top 1% of users send a large share of the
	// requests, yet many distinct users appear.
	top, distinct := 0, 0
	for k, f := range freq {
		if k < pop.Size/100 {
			top += f
		}
		if f > 0 {
			distinct++
		}
	}
	if share := float64(top) / draws; share < 0.2 || share > 0.6 {
		t.Errorf("top 1%% of users sent %.2f of requests, want a heavy head (0.2-0.6)", share)
	}
	if distinct < pop.Size/2 {
		t.Errorf("%d distinct users of %d, want a long tail", distinct, pop.Size)
	}
}

func TestUserIsStable(t *testing.T) {
	pop := testPopulation(sampleApp(t))
	a, b := pop.User(42), pop.User(42)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("user 42 differs between calls:\n%s\n%s", ja, jb)
	}
	if c := pop.User(43); c.Fields == a.Fields {
		t.Errorf("users 42 and 43 have the same fields")
	}
}

func TestNewGeneratorRefusesBadSettings(t *testing.T) {
	app := sampleApp(t)
	for name, tc := range map[string]struct {
		mutate     func(*Population)
		perRequest int
		shape      RequestShape
	}{
		"s <= 1":      {func(p *Population) { p.S = 1 }, 20, ShapeDevice},
		"v < 1":       {func(p *Population) { p.V = 0.5 }, 20, ShapeDevice},
		"no users":    {func(p *Population) { p.Size = 0 }, 20, ShapeDevice},
		"501 events":  {func(*Population) {}, 501, ShapeDevice},
		"bad shape":   {func(*Population) {}, 20, "sideways"},
		"zero events": {func(*Population) {}, 0, ShapeDevice},
	} {
		t.Run(name, func(t *testing.T) {
			pop := testPopulation(app)
			tc.mutate(pop)
			if _, err := NewGenerator(pop, tc.perRequest, tc.shape, "x"); err == nil {
				t.Error("no error")
			}
		})
	}
}

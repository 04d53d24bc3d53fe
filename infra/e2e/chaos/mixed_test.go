package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/appevent"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
)

// The stream is mixed: besides the ingest's records, a direct producer puts some users' events
// on the stream itself, as version 1 records (one event each, as the ingest wrote them before
// version 2) and as hand-built version 2 records (a request's events packed by envelope.Pack,
// several per record), through the same Kinesis client, fault proxy and lossy transport as the
// ingest. Some users send every request through the API, some every request as version 1 or as
// version 2 records, and the mixed users' requests take each route in turn, so one user's
// records of both versions interleave on the stream. One user (bigUser) sends events whose
// version 2 encoding exceeds envelope.MaxRecordBytes in one request: they span several records.
// Every check covers these events as it covers the API's.

// userKind is how a user's requests reach the stream.
type userKind string

const (
	kindAPI   userKind = "api"   // every request to the ingest handler
	kindV1    userKind = "v1"    // every request as version 1 records
	kindV2    userKind = "v2"    // every request as version 2 records
	kindMixed userKind = "mixed" // request k by route (k + i/8) % 3: v1, v2, API
)

// userKinds lists every kind, in the order the poison events are spread over them.
var userKinds = []userKind{kindAPI, kindV1, kindV2, kindMixed}

// kindOf gives user i its kind: three users of eight go straight to the stream, one of eight
// mixes.
func kindOf(i int) userKind {
	switch i % 8 {
	case 1:
		return kindV1
	case 3, 6:
		return kindV2
	case 5:
		return kindMixed
	}
	return kindAPI
}

// route is how one request reaches the stream.
type route int

const (
	viaAPI   route = iota // the ingest handler
	directV1              // the direct producer, one version 1 record per event
	directV2              // the direct producer, the request's events packed in version 2 records
)

func (r route) String() string { return [...]string{"api", "v1", "v2"}[r] }

// route returns the route of request k of user i of this kind.
func (k userKind) route(i, req int) route {
	switch k {
	case kindV1:
		return directV1
	case kindV2:
		return directV2
	case kindMixed:
		return [...]route{directV1, directV2, viaAPI}[(req+i/8)%3]
	}
	return viaAPI
}

// bigUser is the index of the user whose one request spans several version 2 records: a
// version 2 user (kindOf), never poisoned.
const bigUser = 3

// Sizes of the big user's events: bigUserEvents events carrying bigContentIDs content ids of
// bigContentIDLen bytes each, about 2.3 KB per event, 32 KB in all.
const (
	bigUserEvents   = 14
	bigContentIDs   = 12
	bigContentIDLen = 180
)

// bigEvents makes u the big user: at least bigUserEvents events (more content views, added
// with add at ages from age), each with long content ids, and from the middle on a new app
// version and a phone number, so that the version 2 records carry per-event user and device
// objects too.
func bigEvents(u *user, r *rand.Rand, add func(age time.Duration), age func() time.Duration) {
	for len(u.events) < bigUserEvents {
		add(age())
	}
	usr := maps.Clone(u.events[0]["user"].(map[string]any))
	usr["phone"] = "(650) 555-0003"
	device := maps.Clone(u.events[0]["device"].(map[string]any))
	device["app_version"] = "2.4.0"
	for n, e := range u.events {
		custom, _ := e["custom_data"].(map[string]any)
		custom = maps.Clone(custom)
		if custom == nil {
			custom = map[string]any{}
		}
		ids := make([]string, bigContentIDs)
		for k := range ids {
			ids[k] = fmt.Sprintf("sku-%03d-", r.IntN(1000)) + strings.Repeat("x", bigContentIDLen-8)
		}
		custom["content_ids"] = ids
		e["custom_data"] = custom
		if n >= len(u.events)/2 {
			e["user"], e["device"] = usr, device
		}
	}
}

// directProducer puts requests on the stream without the ingest handler: it parses them as
// the ingest does (the same parser, pepper and app config), then writes the events as version
// 1 or version 2 records through its Publisher. Like the API client it resends until every
// record is written and, when it "loses the answer" (while the faults are on), sends the whole
// request again, with a new arrival time and in the other version, so the same events come
// twice in both versions.
type directProducer struct {
	pub    *stream.Publisher
	parser *appevent.Parser
	app    *appconfig.App
	client *apiClient // records the accepted events, draws the lost answers
	// dropOne (CHAOS_SABOTAGE=direct-drop): the big user's last record is never put, though its
	// events count as accepted.
	dropOne bool

	mu sync.Mutex
	st directStats
}

// directStats is what the direct producer wrote.
type directStats struct {
	requests, resends, retries int
	v1Records, v2Records       int
	v2Events, multiRecords     int // events in version 2 records; records holding several
	largest                    int // bytes of the largest version 2 record
	spanned                    int // requests whose events took several version 2 records
	dropped                    []string
}

func (d *directProducer) stats() directStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.st
	st.dropped = slices.Clone(d.st.dropped)
	return st
}

// send writes one request's events until all are on the stream.
func (d *directProducer) send(ctx context.Context, req request) error {
	body, _ := json.Marshal(map[string]any{"events": req.events})
	recs, err := d.parse(body, time.Now())
	if err != nil {
		return err
	}
	version := req.route
	d.mu.Lock()
	d.st.requests++
	d.mu.Unlock()
	for {
		records, sabotaged := d.encode(recs, version)
		if err := d.put(ctx, records); err != nil {
			return err
		}
		d.client.mu.Lock()
		for _, r := range recs {
			d.client.accepted[r.Event.ID] = true
		}
		d.client.mu.Unlock()
		if sabotaged || !d.client.loseAnswer() {
			return nil
		}
		// The producer never heard back: the whole request again, later, in the other version.
		version = directV1 + directV2 - version
		now := time.Now().UnixMilli()
		for i := range recs {
			recs[i].ReceivedAt = now
		}
		d.mu.Lock()
		d.st.resends++
		d.mu.Unlock()
	}
}

// parse runs the request through the ingest's parser and returns its events.
func (d *directProducer) parse(body []byte, now time.Time) ([]envelope.Record, error) {
	batch, err := d.parser.Parse(d.app, string(body), now)
	if err != nil {
		return nil, fmt.Errorf("direct producer: %w", err)
	}
	defer batch.Release()
	if len(batch.Rejected) > 0 {
		return nil, fmt.Errorf("direct producer: event refused: %+v", batch.Rejected[0])
	}
	var recs []envelope.Record
	for _, a := range batch.Records {
		rs, err := envelope.Decode(a.Data)
		if err != nil {
			return nil, fmt.Errorf("direct producer: %w", err)
		}
		recs = append(recs, rs...)
	}
	return recs, nil
}

// encode writes recs as records of the route's version. It reports whether it left a record
// out on purpose (sabotage).
func (d *directProducer) encode(recs []envelope.Record, version route) ([]ports.StreamRecord, bool) {
	var out []ports.StreamRecord
	d.mu.Lock()
	defer d.mu.Unlock()
	if version == directV1 {
		for i := range recs {
			out = append(out, ports.StreamRecord{PartitionKey: recs[i].UserKey, Data: envelope.AppendV1(nil, &recs[i])})
		}
		d.st.v1Records += len(out)
		return out, false
	}
	packed := envelope.Pack(recs)
	for _, p := range packed {
		out = append(out, ports.StreamRecord{PartitionKey: p.UserKey, Data: p.Data})
		d.st.v2Events += p.N
		d.st.largest = max(d.st.largest, len(p.Data))
		if p.N > 1 {
			d.st.multiRecords++
		}
	}
	d.st.v2Records += len(out)
	if len(packed) > 1 {
		d.st.spanned++
		if d.dropOne && len(d.st.dropped) == 0 {
			last := packed[len(packed)-1]
			for _, r := range recs[last.First : last.First+last.N] {
				d.st.dropped = append(d.st.dropped, r.Event.ID)
			}
			return out[:len(out)-1], true
		}
	}
	return out, false
}

// put publishes records, resending those not written, until all are.
func (d *directProducer) put(ctx context.Context, records []ports.StreamRecord) error {
	for attempt := 1; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rep := d.pub.Publish(callCtx, records)
		cancel()
		if len(rep.Failed) == 0 {
			return nil
		}
		if attempt == maxClientAttempts {
			return fmt.Errorf("direct producer: %d records still not written after %d attempts: %v", len(rep.Failed), attempt, rep.Err())
		}
		again := make([]ports.StreamRecord, 0, len(rep.Failed))
		for _, f := range rep.Failed {
			again = append(again, records[f.Index])
		}
		d.mu.Lock()
		d.st.retries += len(again)
		d.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(time.Duration(attempt)*50*time.Millisecond, 400*time.Millisecond)):
		}
		records = again
	}
}

// streamView is what the stream held at the end, by record version.
type streamView struct {
	records, undecodable int
	v1, v2, v2Multi      int // records of each version; version 2 records with several events
	keysV1, keysV2       map[string]bool
}

func (v *streamView) add(data []byte) {
	v.records++
	recs, err := envelope.Decode(data)
	if err != nil {
		v.undecodable++
		return
	}
	if v.keysV1 == nil {
		v.keysV1, v.keysV2 = map[string]bool{}, map[string]bool{}
	}
	switch {
	case recs[0].V == 1:
		v.v1++
		v.keysV1[recs[0].UserKey] = true
	default:
		v.v2++
		v.keysV2[recs[0].UserKey] = true
		if len(recs) > 1 {
			v.v2Multi++
		}
	}
}

// bothVersions returns the user keys with records of both versions.
func (v *streamView) bothVersions() int {
	n := 0
	for k := range v.keysV1 {
		if v.keysV2[k] {
			n++
		}
	}
	return n
}

// checkMixed: the stream was mixed as the run meant it to be: version 1 records, version 2
// records with several events, users with records of both versions, and one request whose
// events spanned several version 2 records, all read by the consumers (the other checks say
// how they fared).
func checkMixed(v streamView, st directStats) []string {
	var problems []string
	if v.v1 == 0 {
		problems = append(problems, fmt.Sprintf("no version 1 record on the stream (%d records; the producer wrote %d)", v.records, st.v1Records))
	}
	if v.v2Multi == 0 {
		problems = append(problems, fmt.Sprintf("no version 2 record with several events on the stream (%d version 2 records; the producer wrote %d with several)", v.v2, st.multiRecords))
	}
	if v.bothVersions() == 0 {
		problems = append(problems, "no user has records of both versions on the stream")
	}
	if st.spanned == 0 {
		problems = append(problems, "no request's events spanned several version 2 records")
	}
	return problems
}

package chaos

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/metagraph"
	"github.com/retarget-dev/retarget/shared/domain/audiences"
	"github.com/retarget-dev/retarget/shared/domain/metaversions"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/sandbox/metasandbox"
	"github.com/retarget-dev/retarget/shared/sandbox/streampoller"
)

// defaultSeed makes the input (users, events, send times) the same on every run; the faults
// still land differently, as goroutines interleave. CHAOS_SEED overrides it.
const defaultSeed = 20261130

// sabotageModes break one thing on purpose (CHAOS_SABOTAGE=<mode>): the run must then fail,
// and the message says what broke. They show that each check can fail.
var sabotageModes = map[string]string{
	"meta-drop":     "the forwarder never sees one event (the Meta set check fails)",
	"state-drop":    "the segment updater never sees one event (the state check fails)",
	"dlq-lost":      "the dead letters are lost (the dead-letter check fails)",
	"audience-drop": "one member is removed from an audience at Meta behind the sync's back (the audience check fails)",
	"pending-left":  "a membership change is recorded after the last sync (the pending check fails)",
	"stream-unread": "a record is written after the mappings stopped (the stream check fails)",
	"direct-drop":   "the direct producer never puts the last version 2 record of the user whose events span records, yet counts its events accepted (the Meta set and state checks fail)",
}

// TestPipelineUnderFaults runs the whole pipeline under load and faults, then checks that
// nothing was lost, nothing counted twice and nothing left pending. See the package doc.
func TestPipelineUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault-injection suite runs for about 15 s; not with -short")
	}
	sc := defaultScale
	if os.Getenv("CHAOS_LONG") == "1" {
		sc = longScale
	}
	seed := uint64(defaultSeed)
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
		seed = n
	}
	sabotage := os.Getenv("CHAOS_SABOTAGE")
	if _, ok := sabotageModes[sabotage]; sabotage != "" && !ok {
		t.Fatalf("CHAOS_SABOTAGE=%q: want one of %v", sabotage, slices.Sorted(maps.Keys(sabotageModes)))
	}
	if sabotage != "" {
		t.Logf("SABOTAGE %s: %s; this run must fail", sabotage, sabotageModes[sabotage])
	}

	began := time.Now()
	in := generate(sc, seed, began)
	p := startPipeline(t, seed, in.poison, sabotage)
	if err := in.resolve(p.app, began); err != nil {
		t.Fatalf("generated input: %v", err)
	}
	p.sabotageID = in.users[0].events[0].id()
	rules, err := segments.Compile(p.app)
	if err != nil {
		t.Fatal(err)
	}
	aa, err := audiences.Compile(p.app)
	if err != nil {
		t.Fatal(err)
	}
	nEvents := 0
	kinds := map[userKind]int{}
	for _, u := range in.users {
		nEvents += len(u.events)
		kinds[u.kind]++
	}
	routes := map[string]int{}
	for _, r := range in.pending {
		routes[r.route.String()]++
	}
	t.Logf("scale %s, seed %d: %d users (by route %v), %d events in %d requests (by route %v), %d poison events; faults on for %s",
		sc.name, seed, len(in.users), kinds, nEvents, len(in.pending), routes, len(in.poison), sc.load)

	// Load under faults.
	setupDone := time.Now()
	client := newAPIClient(p.ingest, p.rng)
	client.direct, p.direct.client = p.direct, client
	p.setFaults(true)
	client.loseAnswers.Store(true)
	p.start(t)
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			p.stopSync()
			p.stopPollers()
		}
	}
	t.Cleanup(stopAll)
	loadCtx, cancelLoad := context.WithTimeout(context.Background(), sc.load+sc.drain)
	defer cancelLoad()
	schedule := &faultSchedule{p: p, seed: int64(seed), poison: in.poison}
	var wg sync.WaitGroup
	wg.Go(func() { schedule.run(loadCtx, sc.load) })
	sendErr := client.run(loadCtx, in.pending, sc.clients, setupDone)
	wg.Wait()
	p.setFaults(false)
	client.loseAnswers.Store(false)
	p.meta.sb.SetFaults(metasandbox.Faults{PoisonEventIDs: in.poison}) // Meta still refuses the poison
	if sendErr != nil {
		t.Fatalf("clients: %v", sendErr)
	}
	loadDone := time.Now()

	// Drain: the mappings catch up, the sync uploads what is left, Meta answers the held
	// requests.
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), sc.drain)
	defer cancelDrain()
	for _, m := range []struct {
		name   string
		poller *streampoller.Poller
	}{{"capi-forwarder", p.fwdPoller}, {"segment-updater", p.updPoller}} {
		if err := m.poller.WaitIdle(drainCtx); err != nil {
			t.Errorf("%s mapping did not catch up within %s: %v (%+v)", m.name, sc.drain, err, m.poller.Stats())
		}
	}
	p.stopSync()
	syncRuns := p.finalSync(drainCtx, aa)
	if err := p.meta.waitQuiet(drainCtx); err != nil {
		t.Error(err)
	}
	stopAll()
	drained := time.Now()

	// Sabotage after the drain, where the mode asks for it.
	p.sabotageAfterDrain(t, drainCtx, in, aa)

	// Observe and check.
	apiAccepted := client.acceptedIDs()
	accepted := map[string]bool{}
	for _, id := range apiAccepted {
		accepted[id] = true
	}
	refs := reference(in, accepted, rules, setupDone, time.Now())
	owner := func(id string) string {
		if u := in.byID[id]; u != nil {
			return u.appUserID
		}
		return "an unknown user"
	}
	ownerOfKey := map[string]string{}
	for _, u := range in.users {
		ownerOfKey[u.userKey] = u.appUserID
	}
	byKey := func(uk string) string {
		if n, ok := ownerOfKey[uk]; ok {
			return n
		}
		return "unknown key " + uk
	}
	metaAccepted := map[string]int{}
	for _, a := range p.meta.sb.Accepted() {
		metaAccepted[a.EventID]++
	}
	letters, err := deadletters.ReadFile(p.dlqFile)
	if err != nil {
		t.Fatal(err)
	}
	stored := p.readUsers(t, drainCtx, refs)
	members, pv := p.readAudiences(t, drainCtx, aa)
	last, view := p.readShardEnds(t, drainCtx)
	direct := p.direct.stats()
	checked := time.Now()

	report := func(name string, problems []string) {
		if len(problems) == 0 {
			t.Logf("check %-28s ok", name)
			return
		}
		t.Errorf("check %s: %d problems:\n  %s", name, len(problems), strings.Join(problems[:min(len(problems), 25)], "\n  "))
	}
	report("Meta accepted set", checkMeta(apiAccepted, in.poison, metaAccepted, owner))
	report("dead letters", checkDeadLetters(in.poison, letters))
	report("user state in DynamoDB", checkStates(refs, stored))
	report("outcome cohorts", checkCohorts(aa, refs, stored))
	report("audience membership", checkAudiences(aa, refs, members, func(uk, seg string) string { return p.history(drainCtx, uk, seg) }))
	report("nothing pending", checkNothingPending(pv, byKey))
	report("no audience call while paused", checkUsagePauses(p.meta.sb.Requests()))
	report("stream (capi-forwarder)", checkStream("capi-forwarder", last, p.fwdPoller.Stats(), p.onFailure.snapshot()))
	report("stream (segment-updater)", checkStream("segment-updater", last, p.updPoller.Stats(), p.onFailure.snapshot()))
	report("mixed stream", checkMixed(view, direct))
	// Coverage is a property of the run, not of the pipeline: the short CI run draws its faults
	// at random and may miss a rare kind (a GetRecords throttle, a crash after a batch); it
	// says so in the log. The long run must hit every kind.
	if missing := schedule.coverage(client); os.Getenv("CHAOS_LONG") != "" {
		report("faults injected", missing)
	} else if len(missing) > 0 {
		t.Logf("check faults injected: not every kind this run: %s", missing[0])
	} else {
		t.Logf("check %-28s ok", "faults injected")
	}
	if len(apiAccepted) != nEvents {
		t.Errorf("the API accepted %d distinct events of the %d sent", len(apiAccepted), nEvents)
	}

	// What happened, for the log.
	dups := 0
	for _, n := range metaAccepted {
		dups += n - 1
	}
	fwd, upd := p.fwdPoller.Stats(), p.updPoller.Stats()
	t.Logf("api: %d requests, statuses %v, %d events resent, %d answers lost by clients; %d records on the stream for %d accepted events",
		client.requests.Load(), client.statuses, client.retried, client.lost, view.records, len(apiAccepted))
	t.Logf("direct producer: %d requests (%d sent again in the other version, %d records resent); %d version 1 records; %d version 2 records of %d events (%d with several, the largest %d bytes), %d requests over several records",
		direct.requests, direct.resends, direct.retries, direct.v1Records, direct.v2Records, direct.v2Events, direct.multiRecords, direct.largest, direct.spanned)
	t.Logf("stream: %d version 1 records, %d version 2 records (%d with several events), %d undecodable; %d users with records of both versions",
		view.v1, view.v2, view.v2Multi, view.undecodable, view.bothVersions())
	if len(direct.dropped) > 0 {
		t.Logf("direct producer: sabotage: never put the record of %s", strings.Join(direct.dropped, ", "))
	}
	t.Logf("meta: %d Graph requests %v; %d events accepted (%d duplicates deduplicated); %d dead letters",
		len(p.meta.sb.Requests()), requestKinds(p.meta.sb.Requests()), len(metaAccepted), dups, len(letters))
	for _, m := range []struct {
		st streampoller.Stats
		c  *crasher
	}{{fwd, p.fwdCrash}, {upd, p.updCrash}} {
		t.Logf("%s mapping: %d invocations, %d records delivered, %d function errors, %d partial failures, %d bisections, %d retries; %d killed mid-batch, %d crashed after",
			m.c.name, m.st.Invocations, m.st.RecordsDelivered, m.st.FunctionErrors, m.st.PartialFailures, m.st.Bisections, m.st.Retries,
			m.c.midKills.Load(), m.c.afterKill.Load())
	}
	t.Logf("aws faults: %v; %d BatchWriteItem items left unprocessed, %d DynamoDB writes held %s",
		p.injected.snapshot(), p.dynx.injected.Load(), p.dynx.slowed.Load(), dynamoSlowWriteDelay)
	unstable := 0
	for _, r := range refs {
		if !r.stable() {
			unstable++
		}
	}
	t.Logf("reference: %d users folded; %d changed segments during the run (segments and audiences not compared for them)", len(refs), unstable)
	warnings, alerts := p.logs.counts()
	t.Logf("audience sync: %d final runs; %d warning lines logged (%d ALERT)", syncRuns, warnings, alerts)
	t.Logf("time: setup %s, load %s, drain %s, checks %s, total %s",
		setupDone.Sub(began).Round(time.Millisecond), loadDone.Sub(setupDone).Round(time.Millisecond),
		drained.Sub(loadDone).Round(time.Millisecond), checked.Sub(drained).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// finalSync runs the audience sync until no mapped segment has a pending change, at most
// finalSyncRuns times, and returns how many runs it made.
func (p *pipeline) finalSync(ctx context.Context, aa *audiences.AppAudiences) int {
	const finalSyncRuns = 30
	for run := 1; ; run++ {
		runCtx, cancel := context.WithTimeout(ctx, syncRunTimeout)
		_, err := p.syncer.Run(runCtx)
		cancel()
		left := 0
		for _, a := range aa.Audiences() {
			if a.Base() != a.Segment() {
				continue // a holdout audience: its changes are its segment's
			}
			cs, _, perr := p.store.PendingChanges(ctx, p.app.ID, a.Segment(), "", 1)
			if perr != nil {
				left++
			}
			left += len(cs)
		}
		if (left == 0 && err == nil) || run == finalSyncRuns || ctx.Err() != nil {
			return run
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readUsers reads the stored record of every reference user, straight from dynalite.
func (p *pipeline) readUsers(t *testing.T, ctx context.Context, refs []*refUser) map[string]ports.UserRecord {
	t.Helper()
	out := map[string]ports.UserRecord{}
	for _, r := range refs {
		rec, ok, err := p.store.GetUser(ctx, p.app.ID, r.userKey)
		if err != nil {
			t.Fatalf("read user %s: %v", r, err)
		}
		if ok {
			out[r.userKey] = rec
		}
	}
	return out
}

// readAudiences reads every mapped audience's members at Meta (by segment), and what is left
// over: pending changes, the sync's checkpoints, the sessions at Meta.
func (p *pipeline) readAudiences(t *testing.T, ctx context.Context, aa *audiences.AppAudiences) (map[string]map[string]bool, pendingView) {
	t.Helper()
	members := map[string]map[string]bool{}
	v := pendingView{changes: map[string][]ports.PendingChange{}, states: map[string]ports.AudienceSyncState{},
		sessions: map[string][]metasandbox.AudienceSession{}, infos: p.meta.sb.Audiences()}
	for _, a := range aa.Audiences() {
		seg := a.Segment()
		cs, _, err := p.store.PendingChanges(ctx, p.app.ID, seg, "", 1000)
		if err != nil {
			t.Fatalf("pending changes of %s: %v", seg, err)
		}
		v.changes[seg] = cs
		st, found, err := p.store.GetAudienceState(ctx, p.app.ID, seg)
		if err != nil {
			t.Fatalf("audience state of %s: %v", seg, err)
		}
		members[seg] = map[string]bool{}
		if !found || st.AudienceID == "" {
			continue // never synced: no audience at Meta, no member
		}
		v.states[seg] = st
		for key := range p.meta.sb.AudienceMembers(st.AudienceID) {
			members[seg][key] = true
		}
		v.sessions[seg] = p.meta.sb.AudienceSessions(st.AudienceID)
	}
	return members, v
}

// readShardEnds returns the last sequence number of every shard with records, read straight
// from kinesalite, and what the stream holds by record version.
func (p *pipeline) readShardEnds(t *testing.T, ctx context.Context) (map[string]string, streamView) {
	t.Helper()
	shards, err := p.kinesisDirect.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(streamName)})
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	var view streamView
	for _, s := range shards.Shards {
		it, err := p.kinesisDirect.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(streamName),
			ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := p.kinesisDirect.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				last[aws.ToString(s.ShardId)] = aws.ToString(r.SequenceNumber)
				view.add(r.Data)
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return last, view
}

// sabotageAfterDrain breaks what the post-drain sabotage modes break.
func (p *pipeline) sabotageAfterDrain(t *testing.T, ctx context.Context, in *input, aa *audiences.AppAudiences) {
	t.Helper()
	switch p.sabotage {
	case "dlq-lost":
		if err := os.WriteFile(p.dlqFile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	case "pending-left":
		u := in.users[0]
		err := p.store.RecordChanges(ctx, []ports.MembershipChange{{App: p.app.ID, Segment: "vip", UserKey: u.userKey,
			Joined: true, At: time.Now().UnixMilli()}})
		if err != nil {
			t.Fatal(err)
		}
	case "stream-unread":
		_, err := p.kinesisDirect.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(streamName),
			PartitionKey: aws.String(in.users[0].userKey), Data: []byte(`{"v":1}`)})
		if err != nil {
			t.Fatal(err)
		}
	case "audience-drop":
		// Remove, through the Graph API, one member of the largest audience.
		var best *audiences.Audience
		var bestState ports.AudienceSyncState
		bestSize := 0
		for _, a := range aa.Audiences() {
			st, found, err := p.store.GetAudienceState(ctx, p.app.ID, a.Segment())
			if err != nil || !found || st.AudienceID == "" {
				continue
			}
			if n := len(p.meta.sb.AudienceMembers(st.AudienceID)); n > bestSize {
				best, bestState, bestSize = a, st, n
			}
		}
		if best == nil || bestSize < 2 {
			t.Fatal("sabotage audience-drop: no audience with two members")
		}
		var victim string
		for k := range p.meta.sb.AudienceMembers(bestState.AudienceID) {
			victim = k
			break
		}
		row, _ := best.RemovalRow(victim, &segments.State{})
		meta := metagraph.New(metagraph.Config{BaseURL: p.meta.srv.URL, AccessToken: metaToken, AppSecret: metaSecret})
		if _, err := meta.Upload(ctx, ports.AudienceUpload{AudienceID: bestState.AudienceID, Op: ports.AudienceRemove,
			Schema: best.Schema(), Rows: [][]string{row}}); err != nil {
			t.Fatalf("sabotage audience-drop: %v", err)
		}
	}
}

// history says what the state table remembers of one user and one segment: the membership
// changes recorded (pending or synced), whether the sync's member index holds the user, and
// the version of the user's state. It reads the layout documented in package dynamostate:
// change items pk=chg#<app>#<segment> (uk, joined, at, pendingPk while pending), member index
// items pk=mem#<app>#<segment> sk=<user key>.
func (p *pipeline) history(ctx context.Context, uk, seg string) string {
	str := func(s string) dtypes.AttributeValue { return &dtypes.AttributeValueMemberS{Value: s} }
	var changes []string
	out, err := p.dynDirect.Query(ctx, &dynamodb.QueryInput{TableName: aws.String(stateTable),
		KeyConditionExpression:    aws.String("pk = :pk"),
		FilterExpression:          aws.String("uk = :uk"),
		ExpressionAttributeValues: map[string]dtypes.AttributeValue{":pk": str("chg#" + p.app.ID + "#" + seg), ":uk": str(uk)}})
	if err != nil {
		return "history unavailable: " + err.Error()
	}
	for _, item := range out.Items {
		verb := "left"
		if b, ok := item["joined"].(*dtypes.AttributeValueMemberBOOL); ok && b.Value {
			verb = "joined"
		}
		at := ""
		if n, ok := item["at"].(*dtypes.AttributeValueMemberN); ok {
			ms, _ := strconv.ParseInt(n.Value, 10, 64)
			at = time.UnixMilli(ms).UTC().Format(time.RFC3339)
		}
		state := "synced"
		if _, pending := item["pendingPk"]; pending {
			state = "pending"
		}
		changes = append(changes, fmt.Sprintf("%s at %s (%s)", verb, at, state))
	}
	member, err := p.dynDirect.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(stateTable), ConsistentRead: aws.Bool(true),
		Key: map[string]dtypes.AttributeValue{"pk": str("mem#" + p.app.ID + "#" + seg), "sk": str(uk)}})
	indexed := err == nil && member.Item != nil
	rec, _, _ := p.store.GetUser(ctx, p.app.ID, uk)
	return fmt.Sprintf("changes recorded for %q: [%s]; in the sync's member index: %v; state version %d",
		seg, strings.Join(changes, ", "), indexed, rec.Version)
}

// requestKinds counts the sandbox's requests by what they met.
func requestKinds(reqs []metasandbox.RequestLog) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		kind := "ok"
		switch {
		case r.Held:
			kind = "held"
		case r.Fault == metasandbox.FaultRateLimit:
			kind = fmt.Sprintf("rate_limit_%d", r.ErrorCode)
		case r.Fault != "":
			kind = r.Fault
		case r.Status != 200:
			kind = fmt.Sprintf("refused_%d", r.ErrorCode)
		}
		if r.AudienceID != "" || r.AdAccount != "" {
			kind = "audience_" + kind
		}
		out[kind]++
	}
	return out
}

// faultSchedule sets the Meta sandbox's faults over the load period and opens the outage
// windows. It alone calls SetFaults while the load runs.
type faultSchedule struct {
	p      *pipeline
	seed   int64
	poison []string
	turn   int64 // only the Meta timeline changes it

	mu  sync.Mutex
	log []string
}

// forceTimeout bounds the wait for traffic that meets a forced fault.
const (
	forceTimeout = 4 * time.Second
	forceGrace   = 25 * time.Millisecond
)

// base returns the random faults, with a fresh seed each time so that the draws do not
// replay the same pattern after every forced fault.
func (s *faultSchedule) base() metasandbox.Faults {
	s.turn++
	return metaFaults(s.seed+s.turn, s.poison)
}

// run applies the faults for the load period, in cycles of at most faultCycle: the random
// ones all along; in the first cycle, each kind of Meta fault forced at least once; in every
// cycle, an expired-token window, and outages of Kinesis and DynamoDB while clients send.
func (s *faultSchedule) run(ctx context.Context, load time.Duration) {
	start := time.Now()
	s.p.meta.sb.SetFaults(s.base())
	var wg sync.WaitGroup
	wg.Go(func() { s.outages(ctx, start, load) })
	s.metaWindows(ctx, start, load)
	wg.Wait()
	sleepUntil(ctx, start.Add(load))
}

// faultCycle is the period of the fault windows.
const faultCycle = 15 * time.Second

// cycles calls fn with the start and length of each fault cycle of the load period.
func cycles(start time.Time, load time.Duration, fn func(at func(share float64) time.Time) bool) {
	for c := time.Duration(0); c < load; c += faultCycle {
		length := min(faultCycle, load-c)
		at := func(share float64) time.Time { return start.Add(c + time.Duration(share*float64(length))) }
		if !fn(at) {
			return
		}
	}
}

// outages takes Kinesis, then DynamoDB, down for a moment in each cycle, while clients send.
func (s *faultSchedule) outages(ctx context.Context, start time.Time, load time.Duration) {
	cycles(start, load, func(at func(float64) time.Time) bool {
		for _, o := range []struct {
			service string
			at      float64
			length  time.Duration
		}{{"kinesis", 0.3, kinesisOutage}, {"dynamodb", 0.5, dynamoOutage}} {
			if !sleepUntil(ctx, at(o.at)) {
				return false
			}
			s.p.aws.outage.Store(o.service, true)
			s.note("%s outage for %s", o.service, o.length)
			sleepUntil(ctx, time.Now().Add(o.length))
			s.p.aws.outage.Store(o.service, false)
		}
		return true
	})
}

// metaWindows forces each kind of Meta fault in the first cycle and, in each, gives the ad
// accounts a small usage budget for a while (usage headers rising with the calls, throttles
// above 100%), then refuses audience removals for a while, then expires the API versions for a
// moment (Meta answers 2635 to every call, CAPI and audiences), then the token.
func (s *faultSchedule) metaWindows(ctx context.Context, start time.Time, load time.Duration) {
	first := true
	cycles(start, load, func(at func(float64) time.Time) bool {
		if first {
			first = false
			if !sleepUntil(ctx, at(0.08)) {
				return false
			}
			s.forceEach(ctx)
		}
		if !sleepUntil(ctx, at(0.12)) {
			return false
		}
		// Usage budgets (while the load's first changes reach the audiences): every audience
		// answer carries usage headers that rise with the calls, and Meta throttles above 100%;
		// the sync must pause at 85% (checkUsagePauses).
		f := s.base()
		f.AudienceUsageBudget, f.AudienceUsageWindow = metaUsageBudget, metaUsageBudgetWindow
		s.p.meta.sb.SetFaults(f)
		s.note("audience usage budget %d calls per %s for %s", metaUsageBudget, metaUsageBudgetWindow, metaUsageWindow)
		sleepUntil(ctx, time.Now().Add(metaUsageWindow))
		s.p.meta.sb.SetFaults(s.base())
		if !sleepUntil(ctx, at(0.3)) {
			return false
		}
		f = s.base()
		f.RefuseRemovals = true // "audience size too low": the sync holds the removals, adds go on
		s.p.meta.sb.SetFaults(f)
		s.note("removals refused for %s", metaRefuseRemovalsWindow)
		sleepUntil(ctx, time.Now().Add(metaRefuseRemovalsWindow))
		s.p.meta.sb.SetFaults(s.base())
		if !sleepUntil(ctx, at(0.55)) {
			return false
		}
		s.setVersionsExpired(true)
		s.note("api versions expired for %s", metaVersionExpiredWindow)
		sleepUntil(ctx, time.Now().Add(metaVersionExpiredWindow))
		s.setVersionsExpired(false)
		if !sleepUntil(ctx, at(0.75)) {
			return false
		}
		f = s.base()
		f.TokenExpired = true
		s.p.meta.sb.SetFaults(f)
		s.note("token expired for %s", metaTokenExpiredWindow)
		sleepUntil(ctx, time.Now().Add(metaTokenExpiredWindow))
		s.p.meta.sb.SetFaults(s.base())
		return true
	})
}

// setVersionsExpired makes the sandbox answer 2635 to the versions the pipeline calls (the
// defaults of both APIs), or serve them again.
func (s *faultSchedule) setVersionsExpired(on bool) {
	var v metasandbox.Versions
	if on {
		v.Expired = []string{metaversions.DefaultConversions, metaversions.DefaultMarketing}
	}
	if err := s.p.meta.sb.SetVersions(v); err != nil {
		panic(err) // constant, valid versions
	}
}

// sleepUntil waits until at; false when ctx ended first.
func sleepUntil(ctx context.Context, at time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(at)):
		return true
	}
}

func (s *faultSchedule) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, fmt.Sprintf(format, args...))
}

// forceEach makes each kind of Meta fault happen at least once: every default rate-limit
// code, a held request, HTTP 500 and a bare 503, and a Custom Audience rate limit.
func (s *faultSchedule) forceEach(ctx context.Context) {
	for _, code := range metasandbox.DefaultRateLimitCodes {
		f := s.base()
		f.RateLimitRate, f.RateLimitCodes = 1, []int{code}
		s.force(ctx, f, false, func(r metasandbox.RequestLog) bool {
			return r.Fault == metasandbox.FaultRateLimit && r.ErrorCode == code
		}, fmt.Sprintf("rate limit %d", code))
	}
	f := s.base()
	f.TimeoutRate = 1
	s.force(ctx, f, false, nil, "held request") // its log entry comes after the hold
	for _, kind := range []string{metasandbox.FaultServerError, metasandbox.FaultUnavailable} {
		f := s.base()
		f.ServerErrorRate = 1
		s.force(ctx, f, false, func(r metasandbox.RequestLog) bool { return r.Fault == kind }, kind)
	}
	f = s.base()
	f.AudienceRateLimitRate = 1
	s.force(ctx, f, true, func(r metasandbox.RequestLog) bool { return r.Fault == metasandbox.FaultAudienceRateLimit }, "audience rate limit")
}

// force sets f until a request (a CAPI one, or a Custom Audience one) has met it, as done
// sees in the request log, then puts random faults back.
func (s *faultSchedule) force(ctx context.Context, f metasandbox.Faults, audience bool, done func(metasandbox.RequestLog) bool, what string) {
	sb := s.p.meta.sb
	arrivals := &s.p.meta.events
	if audience {
		arrivals = &s.p.meta.audience
	}
	deadline := time.Now().Add(forceTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		from := len(sb.Requests())
		seen := arrivals.Load()
		f.Seed++
		sb.SetFaults(f)
		for arrivals.Load() == seen && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(forceGrace) // the request draws its faults a moment after it arrives
		sb.SetFaults(s.base())
		if arrivals.Load() == seen {
			break
		}
		if done == nil {
			s.note("forced %s", what)
			return
		}
		time.Sleep(forceGrace)
		reqs := sb.Requests()
		if slices.ContainsFunc(reqs[min(from, len(reqs)):], done) {
			s.note("forced %s", what)
			return
		}
	}
	s.note("could not force %s (no traffic)", what)
}

// coverage lists the faults that were never injected: a run without them proves nothing
// about them.
func (s *faultSchedule) coverage(c *apiClient) []string {
	kinds := requestKinds(s.p.meta.sb.Requests())
	injected := s.p.injected.snapshot()
	sum := func(prefix, suffix string) int {
		n := 0
		for k, v := range injected {
			if strings.HasPrefix(k, prefix) && strings.HasSuffix(k, suffix) {
				n += v
			}
		}
		return n
	}
	want := map[string]int{
		"meta 500 (code 2)":             kinds[metasandbox.FaultServerError] + kinds["audience_"+metasandbox.FaultServerError],
		"meta bare 503":                 kinds[metasandbox.FaultUnavailable] + kinds["audience_"+metasandbox.FaultUnavailable],
		"meta held past the timeout":    kinds["held"],
		"meta expired token":            kinds[metasandbox.FaultTokenExpired] + kinds["audience_"+metasandbox.FaultTokenExpired],
		"meta expired version (2635)":   kinds[fmt.Sprintf("refused_%d", metasandbox.CodeDeprecatedVersion)] + kinds[fmt.Sprintf("audience_refused_%d", metasandbox.CodeDeprecatedVersion)],
		"meta audience rate limit":      kinds["audience_"+metasandbox.FaultAudienceRateLimit],
		"meta refused removals":         kinds["audience_"+metasandbox.FaultRemovalRefused],
		"meta usage past the pause":     usagePauses(s.p.meta.sb.Requests()),
		"meta poison refusals":          kinds[fmt.Sprintf("refused_%d", metasandbox.CodeInvalidParameter)],
		"kinesis PutRecords call fault": sum("kinesis PutRecords", ""),
		"kinesis PutRecords entry":      sum("kinesis PutRecords entry", ""),
		"kinesis outage":                sum("kinesis outage", ""),
		"kinesis GetRecords throttled":  sum("kinesis GetRecords", ""),
		"kinesis lost answers":          sum("lost answer Kinesis", ""),
		"dynamodb throttled":            sum("dynamodb ", "throttled"),
		"dynamodb 5xx":                  sum("dynamodb ", "5xx"),
		"dynamodb outage":               sum("dynamodb outage", ""),
		"dynamodb lost answers":         sum("lost answer DynamoDB", ""),
		"dynamodb unprocessed items":    int(s.p.dynx.injected.Load()),
		"dynamodb slow writes":          int(s.p.dynx.slowed.Load()),
		"forwarder killed mid-batch":    int(s.p.fwdCrash.midKills.Load()),
		"forwarder crashed after":       int(s.p.fwdCrash.afterKill.Load()),
		"updater killed mid-batch":      int(s.p.updCrash.midKills.Load()),
		"updater crashed after":         int(s.p.updCrash.afterKill.Load()),
		"api 503 answers":               c.statuses[503],
		"client lost answers":           c.lost,
	}
	for _, code := range metasandbox.DefaultRateLimitCodes {
		want[fmt.Sprintf("meta rate limit %d", code)] = kinds[fmt.Sprintf("rate_limit_%d", code)]
	}
	var missing []string
	for k, n := range want {
		if n == 0 {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return []string{fmt.Sprintf("never injected: %s (schedule: %s)", strings.Join(missing, ", "), strings.Join(s.log, "; "))}
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
	"github.com/retarget-dev/retarget/shared/ports"
	"github.com/retarget-dev/retarget/shared/runtime/env"
)

const dlqStoreHelp = `Dead letters are read from --file (make dev: .dev/logs/dead-letters.jsonl) or
--queue-url (a deployed stack's DeadLetterQueueUrl); without either, from
$DEAD_LETTER_QUEUE_URL, $DEAD_LETTER_FILE, the --stack's DeadLetterQueueUrl, the running dev
stack's dead letters file, or .dev/logs/dead-letters.jsonl. Listing an SQS
queue receives its messages and makes them visible again at once. A letter's ID is a short
digest of its content: the same in the file and in SQS.`

var dlqListCommand = &command{
	name:    "dlq list",
	summary: "list dead letters: id, time, app, consumer, reason, event",
	help: `Lists the dead letters (events a consumer gave up on), oldest first, with their reason.

` + dlqStoreHelp,
	example: `  retarget dlq list
  retarget dlq list --reason too_old --json
  retarget dlq list --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/Retarget-DeadLetters`,
	flags: func(fs *flag.FlagSet) any {
		o := &dlqOptions{}
		o.register(fs)
		fs.StringVar(&o.reason, "reason", "", "only letters with this `reason` (e.g. too_old, invalid_parameter)")
		fs.StringVar(&o.app, "app", "", "only letters of this `app`")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.dlqList(ctx, *opts.(*dlqOptions), args)
	},
}

var dlqShowCommand = &command{
	name:    "dlq show",
	args:    "<id>",
	summary: "one dead letter in full (identifiers redacted)",
	help: `Prints one dead letter: reason, detail, Meta's error fields, attempts, where it was on the
stream, and its stream record. The record holds hashed identifiers only; even so digests are
cut to a prefix and the unhashed ids (advertising id, anon_id, IP, user agent) are redacted.
An id prefix is enough when it is unique.

` + dlqStoreHelp,
	example: `  retarget dlq show 3f2a9c1d07b4
  retarget dlq show 3f2a --json`,
	flags: func(fs *flag.FlagSet) any {
		o := &dlqOptions{}
		o.register(fs)
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.dlqShow(ctx, *opts.(*dlqOptions), args)
	},
}

var dlqReplayCommand = &command{
	name:    "dlq replay",
	summary: "put selected dead letters back on the event stream",
	help: `Puts the selected letters' stream records back on the event stream, unchanged (same
event_id: Meta and the segment updater deduplicate anything that did get through), once their
cause is fixed. The replay is deadletters.Replayer: from a
file the replayed letters are removed and the rest kept; from SQS a message is deleted only
once its record is back on the stream.

Choose letters with --id (repeatable), --reason, --app, --event-id (combined with AND), or
--all. --dry-run shows what would be replayed and changes nothing. The stream is --stream, else
$EVENT_STREAM_NAME, else (Kinesis on loopback) the dev stack's ` + devStream + `.

` + dlqStoreHelp,
	example: `  retarget dlq replay --reason too_old --dry-run   # against make dev
  retarget dlq replay --id 3f2a9c1d07b4 --id 9b01c2d3e4f5
  retarget dlq replay --queue-url "$DLQ_URL" --stream Retarget-Events-ABC --reason auth`,
	flags: func(fs *flag.FlagSet) any {
		o := &dlqOptions{}
		o.register(fs)
		fs.Var(&o.ids, "id", "replay the letter with this `id` (repeatable, or comma-separated)")
		fs.StringVar(&o.reason, "reason", "", "replay the letters with this `reason`")
		fs.StringVar(&o.app, "app", "", "replay the letters of this `app`")
		fs.StringVar(&o.eventID, "event-id", "", "replay the letters of the event with this `event_id`")
		fs.BoolVar(&o.all, "all", false, "replay every letter")
		fs.BoolVar(&o.dryRun, "dry-run", false, "show what would be replayed, change nothing")
		fs.StringVar(&o.stream, "stream", "", "Kinesis `stream` to put the records on (default $EVENT_STREAM_NAME)")
		return o
	},
	run: func(ctx context.Context, c *cli, opts any, args []string) error {
		return c.dlqReplay(ctx, *opts.(*dlqOptions), args)
	},
}

type dlqOptions struct {
	file, queueURL       string
	max                  int
	json                 bool
	ids                  stringList
	reason, app, eventID string
	all, dryRun          bool
	stream               string
}

func (o *dlqOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.file, "file", "", "dead letters in this JSON lines `file` (make dev: "+devDeadLetters+")")
	fs.StringVar(&o.queueURL, "queue-url", "", "dead letters in the SQS queue at this `url` (the stack output DeadLetterQueueUrl)")
	fs.IntVar(&o.max, "max", 1000, "read at most this many letters from SQS")
	fs.BoolVar(&o.json, "json", false, "print JSON")
}

// letter is one dead letter with its id.
type letter struct {
	ID string
	ports.DeadLetter
}

// letterID is a short digest of the letter's content: stable, the same wherever it is stored.
func letterID(l ports.DeadLetter) string {
	b, _ := json.Marshal(l) // a DeadLetter always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

func (o dlqOptions) matches(l letter) bool {
	return (o.reason == "" || l.Reason == o.reason) && (o.app == "" || l.App == o.app) &&
		(o.eventID == "" || l.EventID == o.eventID) && (len(o.ids) == 0 || slices.Contains(o.ids, l.ID))
}

// dlqStore says where the letters are: a file or an SQS queue.
type dlqStore struct {
	file, queueURL string
}

func (s dlqStore) String() string {
	if s.queueURL != "" {
		return s.queueURL
	}
	return s.file
}

func (c *cli) dlqStore(o dlqOptions) (dlqStore, error) {
	switch {
	case o.file != "" && o.queueURL != "":
		return dlqStore{}, usagef("", "give --file or --queue-url, not both")
	case o.file != "":
		return dlqStore{file: o.file}, nil
	case o.queueURL != "":
		return dlqStore{queueURL: o.queueURL}, nil
	case c.getenv(env.DeadLetterQueueURL) != "":
		return dlqStore{queueURL: c.getenv(env.DeadLetterQueueURL)}, nil
	case c.getenv(env.DeadLetterFile) != "":
		return dlqStore{file: c.getenv(env.DeadLetterFile)}, nil
	}
	return dlqStore{file: devDeadLetters}, nil
}

// readLetters returns every letter of the store, oldest first.
func (c *cli) readLetters(ctx context.Context, s dlqStore, max int) ([]letter, error) {
	var raw []ports.DeadLetter
	if s.queueURL != "" {
		client, err := c.sqs(ctx)
		if err != nil {
			return nil, err
		}
		if raw, err = listSQS(ctx, client, s.queueURL, max); err != nil {
			return nil, err
		}
	} else {
		if _, err := os.Stat(s.file); errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(c.stderr, "retarget: note: no dead letters: %s does not exist (yet)\n", s.file)
			return nil, nil
		}
		var err error
		if raw, err = deadletters.ReadFile(s.file); err != nil {
			return nil, err
		}
	}
	out := make([]letter, len(raw))
	for i, l := range raw {
		out[i] = letter{ID: letterID(l), DeadLetter: l}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].FailedAt < out[j].FailedAt })
	return out, nil
}

// letterRow is a letter in list and replay output.
type letterRow struct {
	ID        string `json:"id"`
	FailedAt  string `json:"failed_at,omitempty"`
	App       string `json:"app"`
	Consumer  string `json:"consumer"`
	Reason    string `json:"reason"`
	EventID   string `json:"event_id"`
	EventName string `json:"event_name,omitempty"`
	Attempts  int    `json:"attempts"`
	Result    string `json:"result,omitempty"`
}

func rowOf(l letter) letterRow {
	r := letterRow{ID: l.ID, App: l.App, Consumer: l.Consumer, Reason: l.Reason, EventID: l.EventID,
		EventName: l.EventName, Attempts: l.Attempts}
	if l.FailedAt != 0 {
		r.FailedAt = time.UnixMilli(l.FailedAt).UTC().Format(timeLayout)
	}
	return r
}

func (c *cli) dlqList(ctx context.Context, o dlqOptions, args []string) error {
	if len(args) > 0 {
		return usagef("dlq list", "unexpected arguments %q", args)
	}
	store, err := c.dlqStore(o)
	if err != nil {
		return usagef("dlq list", "%v", err)
	}
	letters, err := c.readLetters(ctx, store, o.max)
	if err != nil {
		return err
	}
	var chosen []letter
	rows := []letterRow{}
	for _, l := range letters {
		if o.matches(l) {
			chosen, rows = append(chosen, l), append(rows, rowOf(l))
		}
	}
	if o.json {
		return writeJSON(c.stdout, rows)
	}
	now := c.now()
	table := make([][]string, len(chosen))
	for i, l := range chosen {
		when := ""
		if l.FailedAt != 0 {
			when = fmtTime(time.UnixMilli(l.FailedAt), now)
		}
		table[i] = []string{l.ID, when, l.App, l.Consumer, l.Reason, l.EventID, l.EventName, strconv.Itoa(l.Attempts)}
	}
	if err := writeTable(c.stdout, []string{"ID", "FAILED AT", "APP", "CONSUMER", "REASON", "EVENT ID", "EVENT", "ATTEMPTS"}, table); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\n%d dead letter(s) in %s\n", len(rows), store)
	return nil
}

// findLetter finds a letter by id or by a unique prefix of at least 4 characters.
func findLetter(letters []letter, id string) (letter, error) {
	var found []letter
	for _, l := range letters {
		if l.ID == id {
			return l, nil
		}
		if len(id) >= 4 && strings.HasPrefix(l.ID, id) {
			found = append(found, l)
		}
	}
	switch len(found) {
	case 0:
		return letter{}, fmt.Errorf("no dead letter with id %q (see retarget dlq list; an id prefix needs 4 characters at least)", id)
	case 1:
		return found[0], nil
	}
	return letter{}, fmt.Errorf("dead letter id %q is ambiguous (%d letters start with it)", id, len(found))
}

// letterView is dlq show's output.
type letterView struct {
	letterRow
	Detail         string           `json:"detail,omitempty"`
	MetaError      *ports.MetaError `json:"meta_error,omitempty"`
	ShardID        string           `json:"shard_id,omitempty"`
	SequenceNumber string           `json:"sequence_number,omitempty"`
	RecordBytes    int              `json:"record_bytes"`
	Replayable     bool             `json:"replayable"`
	RecordError    string           `json:"record_error,omitempty"`
	Record         any              `json:"record,omitempty"`
}

func (c *cli) dlqShow(ctx context.Context, o dlqOptions, args []string) error {
	if len(args) != 1 {
		return usagef("dlq show", "want one letter <id> (see retarget dlq list)")
	}
	store, err := c.dlqStore(o)
	if err != nil {
		return usagef("dlq show", "%v", err)
	}
	letters, err := c.readLetters(ctx, store, o.max)
	if err != nil {
		return err
	}
	l, err := findLetter(letters, args[0])
	if err != nil {
		return err
	}
	v := letterView{letterRow: rowOf(l), Detail: l.Detail, MetaError: l.Meta, ShardID: l.ShardID,
		SequenceNumber: l.SequenceNumber, RecordBytes: len(l.Record)}
	if _, err := envelope.Decode(l.Record); err != nil {
		v.RecordError = err.Error()
	} else {
		v.Replayable = true
	}
	// The record is shown only as far as it parses as JSON, with its identifiers redacted; a
	// record that is not JSON is never printed (it could hold anything).
	if rec, err := redactRecord(l.Record); err == nil {
		v.Record = rec
	}
	if o.json {
		return writeJSON(c.stdout, v)
	}
	now := c.now()
	when := ""
	if l.FailedAt != 0 {
		when = fmtTime(time.UnixMilli(l.FailedAt), now)
	}
	fs := []field{
		{"id", v.ID}, {"failed at", when}, {"app", v.App}, {"consumer", v.Consumer}, {"reason", v.Reason},
		{"detail", v.Detail}, {"event id", v.EventID}, {"event name", v.EventName},
		{"attempts", strconv.Itoa(v.Attempts)}, {"shard", v.ShardID}, {"sequence number", v.SequenceNumber},
	}
	if m := v.MetaError; m != nil {
		code := strconv.Itoa(m.Code)
		if m.Subcode != 0 {
			code += "/" + strconv.Itoa(m.Subcode)
		}
		fs = append(fs, field{"meta error", strings.TrimSpace(code + " " + m.Type)}, field{"meta message", m.Message},
			field{"meta user title", m.ErrorUserTitle}, field{"meta user message", m.ErrorUserMsg},
			field{"fbtrace id", m.FBTraceID})
	}
	replay := "yes"
	if !v.Replayable {
		replay = "no: " + v.RecordError
	}
	fs = append(fs, field{"replayable", replay}, field{"record", fmt.Sprintf("%d bytes (identifiers redacted below)", v.RecordBytes)})
	if err := writeFields(c.stdout, fs); err != nil {
		return err
	}
	if v.Record != nil {
		var b bytes.Buffer
		if err := writeJSON(&b, v.Record); err != nil {
			return err
		}
		for line := range strings.Lines(b.String()) {
			fmt.Fprint(c.stdout, "  "+line)
		}
	}
	return nil
}

// redactRecord decodes a stream record for display: the user key and every hashed identifier
// cut to a prefix, the unhashed identifiers (advertising id, anon_id, IP address, user agent,
// and anything unknown under "user") replaced.
func redactRecord(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if uk, ok := doc["uk"].(string); ok {
		doc["uk"] = shortKey(uk)
	}
	// The user objects: a version 1 record's event.user; a version 2 record's user and each
	// event's own. Digests are shortened; everything else but key_source is redacted.
	var users []map[string]any
	ev, _ := doc["event"].(map[string]any)
	if u, ok := ev["user"].(map[string]any); ok {
		users = append(users, u)
	}
	if u, ok := doc["user"].(map[string]any); ok {
		users = append(users, u)
	}
	evs, _ := doc["events"].([]any)
	for _, e := range evs {
		e, _ := e.(map[string]any)
		if u, ok := e["user"].(map[string]any); ok {
			users = append(users, u)
		}
	}
	for _, user := range users {
		for k, v := range user {
			s, isString := v.(string)
			switch {
			case k == "key_source":
			case isString && isDigest(s):
				user[k] = shortKey(s)
			default:
				user[k] = "(redacted)"
			}
		}
	}
	return doc, nil
}

// isDigest reports whether s is a SHA-256 digest as a stream record writes it: 64 hex characters
// (version 1) or 43 of unpadded base64url (version 2).
func isDigest(s string) bool {
	if _, ok := identity.ParseHash(s); ok {
		return true
	}
	d, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(d) == 32
}

// replayResult is dlq replay's JSON output.
type replayResult struct {
	Store    string      `json:"store"`
	Stream   string      `json:"stream,omitempty"`
	DryRun   bool        `json:"dry_run"`
	Replayed int         `json:"replayed"`
	Letters  []letterRow `json:"letters"`
}

func (c *cli) dlqReplay(ctx context.Context, o dlqOptions, args []string) error {
	if len(args) > 0 {
		return usagef("dlq replay", "unexpected arguments %q (letter ids go with --id)", args)
	}
	if !o.all && len(o.ids) == 0 && o.reason == "" && o.app == "" && o.eventID == "" {
		return usagef("dlq replay", "choose the letters: --id, --reason, --app, --event-id, or --all")
	}
	if o.all && (len(o.ids) > 0 || o.reason != "" || o.app != "" || o.eventID != "") {
		return usagef("dlq replay", "--all takes no other selection")
	}
	store, err := c.dlqStore(o)
	if err != nil {
		return usagef("dlq replay", "%v", err)
	}
	res := replayResult{Store: store.String(), DryRun: o.dryRun, Letters: []letterRow{}}

	var publisher *stream.Publisher
	if !o.dryRun {
		name := o.stream
		if name == "" {
			name = c.getenv(env.StreamName)
		}
		if name == "" && c.local(serviceKinesis) {
			name = devStream
		}
		if name == "" {
			return usagef("dlq replay", "no stream: pass --stream or set %s (the stack output EventStreamName), %s", env.StreamName, c.targetHint())
		}
		cfg, err := c.awsConfig(ctx, serviceKinesis)
		if err != nil {
			return err
		}
		res.Stream = name
		// The same publisher as the ingest function.
		publisher = stream.NewPublisher(kinesisstream.NewWriter(kinesis.NewFromConfig(cfg), name, ""), stream.Options{})
	}

	var replayErr error
	if store.queueURL != "" {
		replayErr = c.replaySQS(ctx, o, store, publisher, &res)
	} else {
		replayErr = c.replayFile(ctx, o, store, publisher, &res)
	}
	if o.json {
		if err := writeJSON(c.stdout, res); err != nil {
			return err
		}
	} else {
		rows := make([][]string, len(res.Letters))
		for i, r := range res.Letters {
			rows[i] = []string{r.ID, r.App, r.Reason, r.EventID, r.EventName, r.Result}
		}
		if err := writeTable(c.stdout, []string{"ID", "APP", "REASON", "EVENT ID", "EVENT", "RESULT"}, rows); err != nil {
			return err
		}
		if o.dryRun {
			fmt.Fprintf(c.stdout, "\ndry run: %d letter(s) would be replayed; nothing changed\n", countResult(res.Letters, resultWould))
		} else {
			fmt.Fprintf(c.stdout, "\n%d letter(s) replayed to stream %s\n", res.Replayed, res.Stream)
		}
	}
	if replayErr != nil {
		return replayErr
	}
	if len(res.Letters) == 0 {
		return errors.New("no dead letter matches the selection")
	}
	return nil
}

// Results of a letter in dlq replay's output.
const (
	resultWould      = "would replay"
	resultReplayed   = "replayed"
	resultKept       = "not replayed"
	resultDuplicate  = "replayed (same app, reason and event_id as a selected letter)"
	resultUnreadable = "cannot replay: "
)

func countResult(rows []letterRow, result string) int {
	n := 0
	for _, r := range rows {
		if r.Result == result {
			n++
		}
	}
	return n
}

// checkIDs fails for --id values that match no letter, before anything is replayed.
func checkIDs(ids []string, letters []letter) error {
	for _, id := range ids {
		if !slices.ContainsFunc(letters, func(l letter) bool { return l.ID == id }) {
			return fmt.Errorf("no dead letter with id %q (see retarget dlq list; ids are whole, not prefixes, for replay)", id)
		}
	}
	return nil
}

// dryRunRow is a selected letter in a dry run: replayable if its record decodes, as the
// Replayer requires.
func dryRunRow(l letter) letterRow {
	r := rowOf(l)
	r.Result = resultWould
	if _, err := envelope.Decode(l.Record); err != nil {
		r.Result = resultUnreadable + err.Error()
	}
	return r
}

// replayFile replays from a dead-letter file through deadletters.Replayer.ReplayFile. Without
// --id the selection is exactly the Replayer's Filter. With --id each selected letter is
// replayed through a Filter on its app, reason and event_id (the Filter has no letter id): a
// non-selected letter of the same event and reason goes along, and is reported as such.
func (c *cli) replayFile(ctx context.Context, o dlqOptions, store dlqStore, publisher *stream.Publisher, res *replayResult) error {
	before, err := c.readLetters(ctx, store, 0)
	if err != nil {
		return err
	}
	if err := checkIDs(o.ids, before); err != nil {
		return err
	}
	var selected []letter
	for _, l := range before {
		if o.matches(l) {
			selected = append(selected, l)
		}
	}
	if o.dryRun || len(selected) == 0 {
		for _, l := range selected {
			res.Letters = append(res.Letters, dryRunRow(l))
		}
		return nil
	}
	filters := []deadletters.Filter{{Reason: o.reason, App: o.app, EventID: o.eventID}}
	if len(o.ids) > 0 {
		filters = nil
		for _, l := range selected {
			f := deadletters.Filter{Reason: l.Reason, App: l.App, EventID: l.EventID}
			if !slices.Contains(filters, f) {
				filters = append(filters, f)
			}
		}
	}
	var errs []error
	for _, f := range filters {
		r := deadletters.Replayer{Publisher: publisher, Filter: f, Log: io.Discard}
		n, err := r.ReplayFile(ctx, store.file)
		res.Replayed += n
		errs = append(errs, err)
	}
	// What left the file was replayed; what stayed was not.
	after, err := c.readLetters(ctx, store, 0)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	left := map[string]int{}
	for _, l := range after {
		left[l.ID]++
	}
	for _, l := range before {
		isSelected := o.matches(l)
		if left[l.ID] > 0 {
			left[l.ID]--
			if isSelected {
				r := rowOf(l)
				r.Result = resultKept
				res.Letters = append(res.Letters, r)
			}
			continue
		}
		r := rowOf(l)
		r.Result = resultReplayed
		if !isSelected {
			r.Result = resultDuplicate
		}
		res.Letters = append(res.Letters, r)
	}
	return errors.Join(errs...)
}

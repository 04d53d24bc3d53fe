package deadletters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Filter selects letters; empty fields match everything.
type Filter struct {
	Reason, App, EventID string
}

func (f Filter) match(l ports.DeadLetter) bool {
	return (f.Reason == "" || l.Reason == f.Reason) && (f.App == "" || l.App == f.App) && (f.EventID == "" || l.EventID == f.EventID)
}

// Publisher puts records on the stream (stream.Publisher).
type Publisher interface {
	Publish(ctx context.Context, records []ports.StreamRecord) ports.PublishReport
}

// Replayer puts dead-lettered records back on the event stream.
type Replayer struct {
	Publisher Publisher
	Filter    Filter
	DryRun    bool
	Log       io.Writer
}

// record turns a letter back into its stream record. The partition key is the record's user
// key, as at ingest, so the user's events stay on one shard.
func record(l ports.DeadLetter) (ports.StreamRecord, error) {
	recs, err := envelope.Decode(l.Record)
	if err != nil {
		return ports.StreamRecord{}, fmt.Errorf("letter for event %q holds no replayable record: %w", l.EventID, err)
	}
	return ports.StreamRecord{PartitionKey: recs[0].UserKey, Data: l.Record}, nil
}

// publish replays letters and returns which of them are back on the stream.
func (r *Replayer) publish(ctx context.Context, letters []ports.DeadLetter) ([]bool, error) {
	done := make([]bool, len(letters))
	var recs []ports.StreamRecord
	var idx []int
	var errs []error
	for i, l := range letters {
		rec, err := record(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(r.Log, "replay app=%s event=%s reason=%s\n", l.App, l.EventID, l.Reason)
		recs, idx = append(recs, rec), append(idx, i)
	}
	if r.DryRun || len(recs) == 0 {
		return done, errors.Join(errs...)
	}
	rep := r.Publisher.Publish(ctx, recs)
	failed := map[int]bool{}
	for _, f := range rep.Failed {
		failed[f.Index] = true
	}
	for j, i := range idx {
		done[i] = !failed[j]
	}
	return done, errors.Join(append(errs, rep.Err())...)
}

// ReplayFile replays the matching letters of a File queue and keeps the others in the file.
func (r *Replayer) ReplayFile(ctx context.Context, path string) (int, error) {
	all, err := ReadFile(path)
	if err != nil {
		return 0, err
	}
	var chosen []ports.DeadLetter
	var keep []ports.DeadLetter
	for _, l := range all {
		if r.Filter.match(l) {
			chosen = append(chosen, l)
		} else {
			keep = append(keep, l)
		}
	}
	done, err := r.publish(ctx, chosen)
	n := 0
	for i, ok := range done {
		if ok {
			n++
		} else {
			keep = append(keep, chosen[i])
		}
	}
	if r.DryRun || n == 0 {
		return n, err
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	if len(keep) > 0 {
		if werr := NewFile(tmp).Send(ctx, keep); werr != nil {
			return n, errors.Join(err, werr)
		}
	} else if werr := os.WriteFile(tmp, nil, 0o600); werr != nil {
		return n, errors.Join(err, werr)
	}
	return n, errors.Join(err, os.Rename(tmp, path))
}

// SQSAPI is the part of *sqs.Client replay uses.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// ReplaySQS drains the queue: matching letters are replayed and deleted once back on the
// stream; others become visible again after the visibility timeout.
func (r *Replayer) ReplaySQS(ctx context.Context, client SQSAPI, queueURL string) (int, error) {
	n := 0
	for {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
		})
		if err != nil {
			return n, fmt.Errorf("receive: %w", err)
		}
		if len(out.Messages) == 0 {
			return n, nil
		}
		var letters []ports.DeadLetter
		var handles []*string
		for _, m := range out.Messages {
			var l ports.DeadLetter
			if json.Unmarshal([]byte(aws.ToString(m.Body)), &l) != nil || !r.Filter.match(l) {
				continue // not a dead letter of ours, or filtered out
			}
			letters, handles = append(letters, l), append(handles, m.ReceiptHandle)
		}
		done, perr := r.publish(ctx, letters)
		var del []types.DeleteMessageBatchRequestEntry
		for i, ok := range done {
			if ok {
				del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: handles[i]})
			}
		}
		if len(del) > 0 {
			if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: del}); err != nil {
				return n, fmt.Errorf("delete replayed messages: %w", err)
			}
			n += len(del)
		}
		if perr != nil || r.DryRun {
			return n, perr
		}
	}
}

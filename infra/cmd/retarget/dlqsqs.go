package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/app/stream"
	"github.com/retarget-dev/retarget/shared/ports"
)

// sqsAPI is the part of *sqs.Client the dlq commands use: the Replayer's calls, plus making
// received messages visible again.
type sqsAPI interface {
	deadletters.SQSAPI
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// sqs builds the SQS client (c.newSQS in tests).
func (c *cli) sqs(ctx context.Context) (sqsAPI, error) {
	if c.newSQS != nil {
		return c.newSQS(), nil
	}
	cfg, err := c.awsConfig(ctx, serviceSQS)
	if err != nil {
		return nil, err
	}
	return sqs.NewFromConfig(cfg), nil
}

// sqsListVisibility hides the messages list receives while it reads the queue; they are made
// visible again (timeout 0) as soon as it is done.
const sqsListVisibility = 30

// listSQS reads up to max letters of a queue without consuming them: it receives messages
// until the queue has no more to give, then makes every received message visible again. A
// message that is not a dead letter is skipped.
func listSQS(ctx context.Context, client sqsAPI, queueURL string, max int) ([]ports.DeadLetter, error) {
	var out []ports.DeadLetter
	var handles []string
	seen := map[string]bool{}
	var err error
	for len(out) < max {
		var res *sqs.ReceiveMessageOutput
		res, err = client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: int32(min(10, max-len(out))),
			WaitTimeSeconds: 1, VisibilityTimeout: sqsListVisibility,
		})
		if err != nil {
			err = fmt.Errorf("receive from %s: %w", queueURL, err)
			break
		}
		fresh := false
		for _, m := range res.Messages {
			handles = append(handles, aws.ToString(m.ReceiptHandle))
			if seen[aws.ToString(m.MessageId)] {
				continue
			}
			seen[aws.ToString(m.MessageId)], fresh = true, true
			var l ports.DeadLetter
			if json.Unmarshal([]byte(aws.ToString(m.Body)), &l) == nil {
				out = append(out, l)
			}
		}
		if !fresh {
			break
		}
	}
	return out, errors.Join(err, releaseMessages(context.WithoutCancel(ctx), client, queueURL, handles))
}

// releaseMessages makes received messages visible again at once.
func releaseMessages(ctx context.Context, client sqsAPI, queueURL string, handles []string) error {
	var errs []error
	for start := 0; start < len(handles); start += 10 {
		var entries []types.ChangeMessageVisibilityBatchRequestEntry
		for i, h := range handles[start:min(start+10, len(handles))] {
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(h), VisibilityTimeout: 0})
		}
		res, err := client.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
		if err != nil {
			errs = append(errs, fmt.Errorf("make messages visible again: %w", err))
		} else if len(res.Failed) > 0 {
			errs = append(errs, fmt.Errorf("make messages visible again: %d failed (they reappear after %ds)", len(res.Failed), sqsListVisibility))
		}
	}
	return errors.Join(errs...)
}

// replaySQS replays from a queue through deadletters.Replayer.ReplaySQS. The Replayer selects
// by its Filter and leaves the others invisible until their visibility timeout; to select by
// letter id too, and to give the others back at once, it reads the queue through a
// selectingQueue, which hands it only the selected messages.
func (c *cli) replaySQS(ctx context.Context, o dlqOptions, store dlqStore, publisher *stream.Publisher, res *replayResult) error {
	client, err := c.sqs(ctx)
	if err != nil {
		return err
	}
	if o.dryRun {
		raw, err := listSQS(ctx, client, store.queueURL, o.max)
		if err != nil {
			return err
		}
		var all []letter
		for _, l := range raw {
			all = append(all, letter{ID: letterID(l), DeadLetter: l})
		}
		if err := checkIDs(o.ids, all); err != nil {
			return err
		}
		for _, l := range all {
			if o.matches(l) {
				res.Letters = append(res.Letters, dryRunRow(l))
			}
		}
		return nil
	}
	q := &selectingQueue{sqsAPI: client, want: o.matches, handed: map[string]letter{}, seen: map[string]bool{}}
	r := deadletters.Replayer{Publisher: publisher, Log: io.Discard}
	n, replayErr := r.ReplaySQS(ctx, q, store.queueURL)
	res.Replayed = n
	releaseErr := releaseMessages(context.WithoutCancel(ctx), client, store.queueURL, q.skipped)
	for _, h := range q.order {
		l := q.handed[h]
		row := rowOf(l)
		row.Result = resultKept
		if q.deleted[h] {
			row.Result = resultReplayed
		}
		res.Letters = append(res.Letters, row)
	}
	var missing []string
	for _, id := range o.ids {
		if !q.seenIDs[id] {
			missing = append(missing, id)
		}
	}
	var missingErr error
	if len(missing) > 0 {
		missingErr = fmt.Errorf("no dead letter with id %v in the queue", missing)
	}
	return errors.Join(replayErr, releaseErr, missingErr)
}

// selectingQueue is the queue as the Replayer sees it: ReceiveMessage returns only selected
// letters (it keeps receiving past pages without any), and remembers the others so they can be
// made visible again; DeleteMessageBatch records what was deleted, i.e. replayed.
type selectingQueue struct {
	sqsAPI
	want    func(letter) bool
	handed  map[string]letter // by receipt handle
	order   []string          // receipt handles, in the order handed out
	deleted map[string]bool
	skipped []string        // receipt handles of messages not selected
	seen    map[string]bool // message ids
	seenIDs map[string]bool // letter ids
}

func (q *selectingQueue) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if q.seenIDs == nil {
		q.seenIDs = map[string]bool{}
	}
	for {
		res, err := q.sqsAPI.ReceiveMessage(ctx, in, opts...)
		if err != nil || len(res.Messages) == 0 {
			return res, err
		}
		var keep []types.Message
		fresh := false
		for _, m := range res.Messages {
			h := aws.ToString(m.ReceiptHandle)
			if q.seen[aws.ToString(m.MessageId)] {
				q.skipped = append(q.skipped, h)
				continue
			}
			q.seen[aws.ToString(m.MessageId)], fresh = true, true
			var l ports.DeadLetter
			if json.Unmarshal([]byte(aws.ToString(m.Body)), &l) != nil {
				q.skipped = append(q.skipped, h)
				continue
			}
			sel := letter{ID: letterID(l), DeadLetter: l}
			q.seenIDs[sel.ID] = true
			if !q.want(sel) {
				q.skipped = append(q.skipped, h)
				continue
			}
			q.handed[h] = sel
			q.order = append(q.order, h)
			keep = append(keep, m)
		}
		if len(keep) > 0 {
			out := *res
			out.Messages = keep
			return &out, nil
		}
		if !fresh { // only messages seen before: the queue has gone round
			return &sqs.ReceiveMessageOutput{}, nil
		}
	}
}

func (q *selectingQueue) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	res, err := q.sqsAPI.DeleteMessageBatch(ctx, in, opts...)
	if err != nil {
		return res, err
	}
	failed := map[string]bool{}
	for _, f := range res.Failed {
		failed[aws.ToString(f.Id)] = true
	}
	if q.deleted == nil {
		q.deleted = map[string]bool{}
	}
	for _, e := range in.Entries {
		if !failed[aws.ToString(e.Id)] {
			q.deleted[aws.ToString(e.ReceiptHandle)] = true
		}
	}
	return res, nil
}

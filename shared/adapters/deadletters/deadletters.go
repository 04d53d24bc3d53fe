// Package deadletters stores dead letters (ports.DeadLetter): in an SQS queue in AWS, in a JSON
// lines file in `make dev`, and in memory in tests. Every letter carries the stream envelope
// (hashed identifiers only) with its reason, so it can be inspected and replayed.
package deadletters

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/retarget-dev/retarget/shared/ports"
)

// MaxMessageBytes is the largest SQS message body (1 MiB since 2025; 256 KiB before). A letter
// that does not fit is an error: it stays on the stream rather than being stored truncated.
const MaxMessageBytes = 1 << 20

// sqsBatch is SendMessageBatch's limit.
const sqsBatch = 10

// SendMessageBatchAPI is the part of *sqs.Client the SQS queue uses.
type SendMessageBatchAPI interface {
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// SQS is a dead-letter queue on Amazon SQS. Each letter is one message whose body is the
// letter's JSON; the message attributes repeat app, consumer and reason for filtering.
type SQS struct {
	client   SendMessageBatchAPI
	queueURL string
}

var (
	_ ports.DeadLetterQueue = (*SQS)(nil)
	_ ports.DeadLetterQueue = (*File)(nil)
	_ ports.DeadLetterQueue = (*Memory)(nil)
)

// NewSQS returns a queue writing to queueURL.
func NewSQS(client SendMessageBatchAPI, queueURL string) *SQS {
	return &SQS{client: client, queueURL: queueURL}
}

// Send stores every letter or returns an error (entries SQS refused are retried once per call
// by the caller's retry of the whole batch; a partial success is reported as an error so that
// nothing is lost, at the price of a possible duplicate letter).
func (q *SQS) Send(ctx context.Context, letters []ports.DeadLetter) error {
	for start := 0; start < len(letters); start += sqsBatch {
		end := min(start+sqsBatch, len(letters))
		entries := make([]types.SendMessageBatchRequestEntry, 0, end-start)
		for i, l := range letters[start:end] {
			body, err := encode(l)
			if err != nil {
				return err
			}
			entries = append(entries, types.SendMessageBatchRequestEntry{
				Id:          aws.String(strconv.Itoa(i)),
				MessageBody: aws.String(string(body)),
				MessageAttributes: map[string]types.MessageAttributeValue{
					"app":      {DataType: aws.String("String"), StringValue: aws.String(nonEmpty(l.App))},
					"consumer": {DataType: aws.String("String"), StringValue: aws.String(nonEmpty(l.Consumer))},
					"reason":   {DataType: aws.String("String"), StringValue: aws.String(nonEmpty(l.Reason))},
				},
			})
		}
		out, err := q.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.queueURL), Entries: entries})
		if err != nil {
			return fmt.Errorf("dead letters: send message batch: %w", err)
		}
		if len(out.Failed) > 0 {
			f := out.Failed[0]
			return fmt.Errorf("dead letters: %d of %d not stored (first: %s %s)", len(out.Failed), len(entries),
				aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	return nil
}

func nonEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func encode(l ports.DeadLetter) ([]byte, error) {
	body, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("dead letters: encode: %w", err)
	}
	if len(body) > MaxMessageBytes {
		return nil, fmt.Errorf("dead letters: letter for event %q is %d bytes, more than %d", l.EventID, len(body), MaxMessageBytes)
	}
	return body, nil
}

// File appends letters as JSON lines to a file: the dev stack's queue.
type File struct {
	mu   sync.Mutex
	path string
}

// NewFile returns a queue appending to path (created if missing).
func NewFile(path string) *File { return &File{path: path} }

// Send appends the letters and syncs the file.
func (f *File) Send(_ context.Context, letters []ports.DeadLetter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	file, err := os.OpenFile(f.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("dead letters: %w", err)
	}
	w := bufio.NewWriter(file)
	for _, l := range letters {
		body, err := encode(l)
		if err != nil {
			file.Close()
			return err
		}
		w.Write(append(body, '\n'))
	}
	if err := errors.Join(w.Flush(), file.Sync()); err != nil {
		file.Close()
		return fmt.Errorf("dead letters: %w", err)
	}
	return file.Close()
}

// ReadFile returns the letters stored in a File queue.
func ReadFile(path string) ([]ports.DeadLetter, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	var out []ports.DeadLetter
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 2*MaxMessageBytes)
	for line := 1; sc.Scan(); line++ {
		var l ports.DeadLetter
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("dead letters %s line %d: %w", path, line, err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// Memory keeps letters in memory (tests); Fail makes Send return an error.
type Memory struct {
	mu      sync.Mutex
	letters []ports.DeadLetter
	Fail    error
}

// Send stores the letters, or returns m.Fail.
func (m *Memory) Send(_ context.Context, letters []ports.DeadLetter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Fail != nil {
		return m.Fail
	}
	m.letters = append(m.letters, letters...)
	return nil
}

// Letters returns a copy of the stored letters.
func (m *Memory) Letters() []ports.DeadLetter {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ports.DeadLetter(nil), m.letters...)
}

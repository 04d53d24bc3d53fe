// Command dlqreplay puts dead-lettered events back on the event stream, once their cause is
// fixed (a token renewed, a dataset linked, a bug deployed away). Each letter holds the stream
// record exactly as it was read, so a replayed event is the same event: same event_id, and
// Meta deduplicates it if it did get through after all.
//
//	go run ./infra/dlqreplay -file .dev/logs/dead-letters.jsonl -stream retarget-events      # make dev
//	go run ./infra/dlqreplay -queue-url https://sqs.../Retarget-DeadLetters -stream NAME  # AWS
//
// Filters: -reason, -app, -event-id (all optional, combined with AND); -dry-run lists what would
// be replayed. From SQS, a message is deleted only after its record is back on the stream; from
// a file, the replayed letters are removed from it and the rest are kept.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/retarget-dev/retarget/shared/adapters/deadletters"
	"github.com/retarget-dev/retarget/shared/adapters/kinesisstream"
	"github.com/retarget-dev/retarget/shared/app/stream"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dlqreplay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dlqreplay", flag.ContinueOnError)
	file := fs.String("file", "", "dead letters in a JSON lines file (make dev: .dev/logs/dead-letters.jsonl)")
	queueURL := fs.String("queue-url", "", "dead letters in this SQS queue (a deployed stack's DeadLetterQueueUrl)")
	streamName := fs.String("stream", "", "Kinesis stream to put the events back on (required)")
	var f deadletters.Filter
	fs.StringVar(&f.Reason, "reason", "", "only letters with this reason (e.g. invalid_parameter)")
	fs.StringVar(&f.App, "app", "", "only letters of this app")
	fs.StringVar(&f.EventID, "event-id", "", "only the letter of this event")
	dryRun := fs.Bool("dry-run", false, "list what would be replayed, change nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *streamName == "" || (*file == "") == (*queueURL == "") {
		return errors.New("need -stream and exactly one of -file or -queue-url")
	}
	awsCfg, err := config.LoadDefaultConfig(ctx) // honours AWS_ENDPOINT_URL_KINESIS / _SQS
	if err != nil {
		return err
	}
	publisher := stream.NewPublisher(kinesisstream.NewWriter(kinesis.NewFromConfig(awsCfg), *streamName, ""), stream.Options{})
	r := deadletters.Replayer{Publisher: publisher, Filter: f, DryRun: *dryRun, Log: out}
	var n int
	if *file != "" {
		n, err = r.ReplayFile(ctx, *file)
	} else {
		n, err = r.ReplaySQS(ctx, sqs.NewFromConfig(awsCfg), aws.ToString(queueURL))
	}
	fmt.Fprintf(out, "%d letters replayed\n", n)
	return err
}

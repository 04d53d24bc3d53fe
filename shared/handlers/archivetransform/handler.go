// Package archivetransform is the Firehose data transformation of the event archive: Firehose
// reads the event stream, hands each batch to this handler, and writes what it returns as
// Parquet through the Glue table's schema, partitioned on the keys returned with each record.
//
// Each stream record is decoded and mapped exactly as make dev's archiver maps it
// (archive.Decode, with the app config's archive_raw_fields), then emitted as one flat JSON
// object: the columns of the table, event_time and received_at in unix milliseconds (the Glue
// deserializer parses them with the "millis" format). The partition keys app and day are not
// in the object (Athena refuses a table column that repeats a partition key): they go to
// Firehose as metadata.partitionKeys, which the stream's prefix
// app=!{partitionKeyFromLambda:app}/day=!{partitionKeyFromLambda:day}/ turns into the path.
//
// A record that does not decode or map is answered ProcessingFailed with its original bytes:
// Firehose writes it under the error prefix (processing-failed), never silently drops it.
package archivetransform

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/archive"
)

// Partition key names, as the delivery stream's prefix reads them
// (!{partitionKeyFromLambda:app}, !{partitionKeyFromLambda:day}).
const (
	PartitionKeyApp = "app"
	PartitionKeyDay = "day"
)

// Response is Firehose's answer to a transformation. It mirrors events.KinesisFirehoseResponse
// without the Iceberg-only otfMetadata, which aws-lambda-go always serialises (with an empty
// operation) and which an S3 destination has no use for.
type Response struct {
	Records []ResponseRecord `json:"records"`
}

// ResponseRecord is one transformed record: its id, the result (events.KinesisFirehose
// TransformedState*), the data to write and, for Ok records, the partition keys.
type ResponseRecord struct {
	RecordID string    `json:"recordId"`
	Result   string    `json:"result"`
	Data     []byte    `json:"data"`
	Metadata *Metadata `json:"metadata,omitempty"`
}

// Metadata carries the dynamic partitioning keys of a record.
type Metadata struct {
	PartitionKeys map[string]string `json:"partitionKeys"`
}

// Config is what the handler needs.
type Config struct {
	// Apps is the app config: each app's archive_raw_fields decides whether its raw fields are
	// kept. Records of an app it does not know keep the default (raw fields dropped).
	Apps   *appconfig.Config
	Logger *slog.Logger
}

// Handler transforms Firehose batches of stream records into archive rows.
type Handler struct {
	opts func(app string) archive.Options
	log  *slog.Logger
}

// New builds the handler.
func New(c Config) (*Handler, error) {
	if c.Apps == nil || c.Logger == nil {
		return nil, errors.New("archivetransform: Apps and Logger are required")
	}
	apps := c.Apps
	return &Handler{
		opts: func(id string) archive.Options {
			a, ok := apps.App(id)
			return archive.Options{KeepRawFields: ok && a.ArchiveKeepsRawFields()}
		},
		log: c.Logger,
	}, nil
}

// fileRow is the row as the table holds it: the partition keys, shadowed by empty omitempty
// fields, are left out of the object.
type fileRow struct {
	*archive.Row
	App string `json:"app,omitempty"`
	Day string `json:"day,omitempty"`
}

// Handle transforms every record of the batch; it never fails the whole batch (a record that
// cannot be archived fails alone, and Firehose keeps it under the error prefix).
func (h *Handler) Handle(ctx context.Context, ev events.KinesisFirehoseEvent) (Response, error) {
	out := Response{Records: make([]ResponseRecord, 0, len(ev.Records))}
	failed := 0
	for _, r := range ev.Records {
		rec, err := h.transform(r.Data)
		if err != nil {
			failed++
			// The record's content is not logged: it may carry raw personal fields.
			h.log.WarnContext(ctx, "archive record not transformed", "record_id", r.RecordID,
				"sequence_number", r.KinesisFirehoseRecordMetadata.SequenceNumber, "error", err.Error())
			out.Records = append(out.Records, ResponseRecord{RecordID: r.RecordID,
				Result: events.KinesisFirehoseTransformedStateProcessingFailed, Data: r.Data})
			continue
		}
		rec.RecordID = r.RecordID
		out.Records = append(out.Records, rec)
	}
	if failed > 0 {
		h.log.ErrorContext(ctx, "archive records sent to the error prefix", "failed", failed, "records", len(ev.Records))
	}
	return out, nil
}

func (h *Handler) transform(data []byte) (ResponseRecord, error) {
	rows, err := archive.Decode(data, h.opts)
	if err != nil {
		return ResponseRecord{}, err
	}
	// A version 2 record holds several events of one user from one request: one row each, in
	// one output record (Firehose's format conversion reads concatenated JSON documents), all
	// of one app and one day, since they share the record's arrival.
	var b []byte
	for i := range rows {
		row := &rows[i]
		if row.App == "" {
			// An empty key would put the row under app=/, a partition no projection reads.
			return ResponseRecord{}, errors.New("archivetransform: record without an app")
		}
		if row.App != rows[0].App || row.Day != rows[0].Day {
			return ResponseRecord{}, errors.New("archivetransform: a record's events span apps or days")
		}
		line, err := json.Marshal(fileRow{Row: row})
		if err != nil {
			return ResponseRecord{}, err
		}
		// Newline-delimited: Firehose concatenates the records it converts.
		b = append(append(b, line...), '\n')
	}
	return ResponseRecord{Result: events.KinesisFirehoseTransformedStateOk, Data: b,
		Metadata: &Metadata{PartitionKeys: map[string]string{PartitionKeyApp: rows[0].App, PartitionKeyDay: rows[0].Day}}}, nil
}

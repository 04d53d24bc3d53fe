package main

import (
	"fmt"
	"math"
)

// AWS list prices, region us-east-1, on-demand, first pricing tier, in US dollars. They are
// the prices recorded in shared/reference/aws-notes.md ("Costs, us-east-1 list prices, late
// 2026") and on the AWS pricing pages named below; PricesAsOf is when they were copied here.
// Update all of them together, with the date.
const (
	PricesRegion = "us-east-1"
	PricesAsOf   = "2026-11-28"

	// APIGatewayRESTPerMillion: REST API requests, first 333 million a month
	// (aws.amazon.com/api-gateway/pricing; an HTTP API would be $1.00).
	APIGatewayRESTPerMillion = 3.50
	// LambdaRequestsPerMillion: Lambda requests, any architecture (aws.amazon.com/lambda/pricing).
	LambdaRequestsPerMillion = 0.20
	// LambdaARMPerGBSecond: Lambda duration on arm64 (Graviton), first 7.5 billion GB-s a
	// month. Duration is billed per millisecond, rounded up, times the configured memory.
	LambdaARMPerGBSecond = 0.0000133334
	// KinesisOnDemandPerGBIn, KinesisOnDemandPerGBOut, KinesisOnDemandPerStreamHour: Kinesis
	// Data Streams on-demand (Standard) mode (aws.amazon.com/kinesis/data-streams/pricing):
	// data in and data out are metered per record rounded up to the next 1 KB; every consumer
	// without enhanced fan-out pays data out for what it reads; each on-demand stream pays
	// its hours.
	KinesisOnDemandPerGBIn       = 0.08
	KinesisOnDemandPerGBOut      = 0.04
	KinesisOnDemandPerStreamHour = 0.04
	// KinesisShardHour, KinesisPutUnitsPerMillion: Kinesis Data Streams provisioned mode
	// (-c streamShards=N): each shard is paid by the hour, each record by PUT payload units of
	// 25 KB (rounded up); reading with shared throughput (GetRecords) costs nothing more.
	KinesisShardHour          = 0.015
	KinesisPutUnitsPerMillion = 0.014
	// KinesisShardRecordsPerSec, KinesisShardBytesPerSec: what one provisioned shard takes in
	// (and, per consumer sharing it, reads out at twice the bytes).
	KinesisShardRecordsPerSec = 1000
	KinesisShardBytesPerSec   = 1 << 20
	// ProvisionedUtilisation is the share of its shards' write capacity a provisioned stream
	// is sized to use at the measured rate: the rest is headroom for peaks.
	ProvisionedUtilisation = 0.5
	// DynamoDBWriteUnitsPerMillion, DynamoDBReadUnitsPerMillion: on-demand (pay per request)
	// write and read request units (aws.amazon.com/dynamodb/pricing/on-demand). A write unit
	// is one write of up to 1 KB (more for larger items, 2 per KB in transactions, one more
	// per global secondary index the write changes); a read unit is one strongly consistent
	// read of up to 4 KB, or two eventually consistent ones.
	DynamoDBWriteUnitsPerMillion = 0.625
	DynamoDBReadUnitsPerMillion  = 0.125
	// CloudWatchLogsPerGB: CloudWatch Logs ingestion, Standard log class
	// (aws.amazon.com/cloudwatch/pricing). Storage ($0.03/GB-month) is left out: it depends
	// on the retention chosen, not on the pipeline.
	CloudWatchLogsPerGB = 0.50
)

// gib is the gigabyte of AWS data pricing (2^30 bytes).
const gib = 1 << 30

// Lambda memory sizes of the deployed functions (infra/stack: GoFunction's 256 MB default
// for ingest, ForwarderMemoryMiB, SegmentUpdaterMemoryMiB). Copied, not imported: importing
// infra/stack would compile the CDK; TestMemorySizesMatchTheStack keeps them equal.
const (
	IngestMemoryMB    = 256
	ForwarderMemoryMB = 512
	UpdaterMemoryMB   = 512
)

// Log lines CloudWatch receives that neither the dev stack nor the functions write, with
// typical values filled in; their lengths enter the model.
const (
	// Lambda's own records per invocation in the JSON log format the stack sets
	// (LoggingFormat JSON, active tracing): platform.start and platform.report.
	samplePlatformStart  = `{"time":"2026-11-28T23:07:27.205Z","type":"platform.start","record":{"requestId":"2e89084d-95e0-44a3-96a7-137c61ec3e6a","version":"$LATEST","tracing":{"spanId":"4b2c3a1f9e8d7c6b","type":"X-Amzn-Trace-Id","value":"Root=1-6749e8af-5d3c1b2a4f6e7d8c9b0a1f2e;Parent=1a2b3c4d5e6f7a8b;Sampled=1"}}}`
	samplePlatformReport = `{"time":"2026-11-28T23:07:27.212Z","type":"platform.report","record":{"requestId":"2e89084d-95e0-44a3-96a7-137c61ec3e6a","metrics":{"durationMs":6.42,"billedDurationMs":7,"memorySizeMB":256,"maxMemoryUsedMB":38},"tracing":{"spanId":"4b2c3a1f9e8d7c6b","type":"X-Amzn-Trace-Id","value":"Root=1-6749e8af-5d3c1b2a4f6e7d8c9b0a1f2e;Parent=1a2b3c4d5e6f7a8b;Sampled=1"},"status":"success"}}`
	// The API stage's access log line (infra/stack accessLogFormat) for a 202.
	sampleAccessLog = `{"requestId":"8f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b","requestTime":"1795907247205","httpMethod":"POST","resourcePath":"/v1/events","status":"202","responseLength":"29","responseLatency":"9","integrationLatency":"7","integrationStatus":"202","apiKeyId":"a1b2c3d4e5","errorType":"-","errorMessage":"-","xrayTraceId":"Root=1-6749e8af-5d3c1b2a4f6e7d8c9b0a1f2e"}`
)

// PlatformLogBytesPerInvocation and AccessLogBytesPerRequest are the sizes of those lines.
var (
	PlatformLogBytesPerInvocation = float64(len(samplePlatformStart) + len(samplePlatformReport) + 2)
	AccessLogBytesPerRequest      = float64(len(sampleAccessLog) + 1)
)

// FunctionLoad is what one Lambda function does per event.
type FunctionLoad struct {
	Name     string  `json:"name"`
	MemoryMB float64 `json:"memory_mb"`
	// InvocationsPerEvent is 1/(events per invocation).
	InvocationsPerEvent float64 `json:"invocations_per_event"`
	// BilledMs is the mean billed duration of one invocation (handler time rounded up to the ms).
	BilledMs float64 `json:"billed_ms"`
}

// CostInputs are the per-event figures the model prices. Every field is documented with where
// the load test takes it from (see Measure and the README).
type CostInputs struct {
	// EventsPerAPIRequest: events per API Gateway request (the client's batch size).
	EventsPerAPIRequest float64 `json:"events_per_api_request"`
	// Functions: the per-event functions (ingest, forwarder, updater).
	Functions []FunctionLoad `json:"functions"`
	// RecordKB: billed size of one stream record, the mean of ceil((data + partition key)/1 KB).
	RecordKB float64 `json:"record_kb"`
	// StreamShards: 0 for an on-demand stream (the default), else a provisioned stream's shards.
	StreamShards int `json:"stream_shards,omitempty"`
	// PutUnitsPerRecord: mean of ceil((data + partition key)/25 KB), for a provisioned stream.
	PutUnitsPerRecord float64 `json:"put_units_per_record,omitempty"`
	// StreamConsumers: consumers reading the stream without enhanced fan-out (2: forwarder, updater).
	StreamConsumers int `json:"stream_consumers"`
	// EventsPerSecond: the sustained rate the stream's hours are shared by.
	EventsPerSecond float64 `json:"events_per_second"`
	// WriteUnitsPerEvent, ReadUnitsPerEvent: DynamoDB request units per event.
	WriteUnitsPerEvent float64 `json:"write_units_per_event"`
	ReadUnitsPerEvent  float64 `json:"read_units_per_event"`
	// AppLogBytesPerEvent: bytes the functions log per event (JSON log and EMF lines). The
	// model adds Lambda's platform records per invocation and the access log line per request.
	AppLogBytesPerEvent float64 `json:"app_log_bytes_per_event"`
}

// CostLine is one priced item, in dollars per million events.
type CostLine struct {
	Item    string  `json:"item"`
	Dollars float64 `json:"dollars_per_million_events"`
	Basis   string  `json:"basis"`
}

// CostBreakdown is the modelled cost of one design.
type CostBreakdown struct {
	Inputs CostInputs `json:"inputs"`
	Lines  []CostLine `json:"lines"`
	Total  float64    `json:"total_dollars_per_million_events"`
}

// Cost items, in the order they are printed.
const (
	ItemAPIGateway    = "API Gateway REST requests"
	ItemLambdaReq     = "Lambda requests"
	ItemLambdaCompute = "Lambda compute (arm64 GB-s)"
	ItemKinesisIn     = "Kinesis data in"
	ItemKinesisOut    = "Kinesis data out"
	ItemKinesisHours  = "Kinesis stream hours"
	ItemKinesisPut    = "Kinesis PUT payload units"
	ItemKinesisShards = "Kinesis shard hours"
	ItemDynamoWrites  = "DynamoDB write units"
	ItemDynamoReads   = "DynamoDB read units"
	ItemLogs          = "CloudWatch Logs ingestion"
)

// Model prices one million events with in.
func Model(in CostInputs) CostBreakdown {
	const million = 1e6
	b := CostBreakdown{Inputs: in}
	add := func(item string, dollars float64, basis string) {
		b.Lines = append(b.Lines, CostLine{Item: item, Dollars: dollars, Basis: basis})
		b.Total += dollars
	}
	perRequest := 0.0
	if in.EventsPerAPIRequest > 0 {
		perRequest = 1 / in.EventsPerAPIRequest
	}
	add(ItemAPIGateway, perRequest*APIGatewayRESTPerMillion,
		fmt.Sprintf("%.4g requests/event x $%.2f/M", perRequest, APIGatewayRESTPerMillion))

	var invocations, gbSeconds float64
	for _, f := range in.Functions {
		invocations += f.InvocationsPerEvent
		gbSeconds += f.InvocationsPerEvent * f.BilledMs / 1000 * f.MemoryMB / 1024
	}
	add(ItemLambdaReq, invocations*LambdaRequestsPerMillion,
		fmt.Sprintf("%.4g invocations/event x $%.2f/M", invocations, LambdaRequestsPerMillion))
	add(ItemLambdaCompute, gbSeconds*million*LambdaARMPerGBSecond,
		fmt.Sprintf("%.4g GB-s/event x $%.10g/GB-s", gbSeconds, LambdaARMPerGBSecond))

	hours := 0.0
	if in.EventsPerSecond > 0 {
		hours = million / (in.EventsPerSecond * 3600)
	}
	if in.StreamShards > 0 {
		add(ItemKinesisPut, in.PutUnitsPerRecord*KinesisPutUnitsPerMillion,
			fmt.Sprintf("%.3g PUT units/record x $%.3f/M", in.PutUnitsPerRecord, KinesisPutUnitsPerMillion))
		add(ItemKinesisShards, hours*float64(in.StreamShards)*KinesisShardHour,
			fmt.Sprintf("%d shards, %.4g h/M at %.0f events/s x $%.3f/shard-h", in.StreamShards, hours, in.EventsPerSecond, KinesisShardHour))
	} else {
		gbPerMillion := in.RecordKB * 1024 * million / gib
		add(ItemKinesisIn, gbPerMillion*KinesisOnDemandPerGBIn,
			fmt.Sprintf("%.3g KB/record billed, %.4g GB/M x $%.2f/GB", in.RecordKB, gbPerMillion, KinesisOnDemandPerGBIn))
		add(ItemKinesisOut, gbPerMillion*float64(in.StreamConsumers)*KinesisOnDemandPerGBOut,
			fmt.Sprintf("%d consumers x %.4g GB/M x $%.2f/GB", in.StreamConsumers, gbPerMillion, KinesisOnDemandPerGBOut))
		add(ItemKinesisHours, hours*KinesisOnDemandPerStreamHour,
			fmt.Sprintf("1 stream, %.4g h/M at %.0f events/s x $%.2f/h", hours, in.EventsPerSecond, KinesisOnDemandPerStreamHour))
	}

	add(ItemDynamoWrites, in.WriteUnitsPerEvent*DynamoDBWriteUnitsPerMillion,
		fmt.Sprintf("%.3g WRU/event x $%.3f/M", in.WriteUnitsPerEvent, DynamoDBWriteUnitsPerMillion))
	add(ItemDynamoReads, in.ReadUnitsPerEvent*DynamoDBReadUnitsPerMillion,
		fmt.Sprintf("%.3g RRU/event x $%.3f/M", in.ReadUnitsPerEvent, DynamoDBReadUnitsPerMillion))

	logBytes := in.AppLogBytesPerEvent + invocations*PlatformLogBytesPerInvocation + perRequest*AccessLogBytesPerRequest
	add(ItemLogs, logBytes*million/gib*CloudWatchLogsPerGB,
		fmt.Sprintf("%.0f B/event (functions %.0f, Lambda platform %.0f, access log %.0f) x $%.2f/GB", logBytes,
			in.AppLogBytesPerEvent, invocations*PlatformLogBytesPerInvocation, perRequest*AccessLogBytesPerRequest, CloudWatchLogsPerGB))
	return b
}

// Line returns the line of an item (zero if absent).
func (b CostBreakdown) Line(item string) CostLine {
	for _, l := range b.Lines {
		if l.Item == item {
			return l
		}
	}
	return CostLine{}
}

// NaiveFigures are the measurements a naive design reuses: the handlers' time for a single
// event, what each function logs per invocation, the size of a user item.
type NaiveFigures struct {
	// SingleEventMs: billed ms of one invocation with one event, by function name.
	SingleEventMs map[string]float64 `json:"single_event_billed_ms"`
	// LogBytesPerInvocation: bytes the functions log per invocation, by function name.
	LogBytesPerInvocation map[string]float64 `json:"log_bytes_per_invocation"`
	// WriteUnitsPerWrite: write units of one user item write (ceil(size / 1 KB)).
	WriteUnitsPerWrite float64 `json:"write_units_per_write"`
	// ReadUnitsPerRead: read units of one strongly consistent read of a user item.
	ReadUnitsPerRead float64 `json:"read_units_per_read"`
}

// NaiveInputs turns the batched design's inputs into a naive design's: one event per HTTP
// request, one invocation of every function per event (so one CAPI call per event), one
// DynamoDB read and one write per event. The stream's volume and rate stay the same.
func NaiveInputs(batched CostInputs, n NaiveFigures) CostInputs {
	naive := batched
	naive.EventsPerAPIRequest = 1
	naive.Functions = nil
	naive.AppLogBytesPerEvent = 0
	for _, f := range batched.Functions {
		ms, ok := n.SingleEventMs[f.Name]
		if !ok {
			ms = f.BilledMs // not measured: at least as long as nothing
		}
		naive.Functions = append(naive.Functions, FunctionLoad{Name: f.Name, MemoryMB: f.MemoryMB, InvocationsPerEvent: 1, BilledMs: ms})
		naive.AppLogBytesPerEvent += n.LogBytesPerInvocation[f.Name]
	}
	naive.WriteUnitsPerEvent = math.Max(1, n.WriteUnitsPerWrite)
	naive.ReadUnitsPerEvent = math.Max(1, n.ReadUnitsPerRead)
	return naive
}

// ShardsFor is the provisioned shards a stream needs for eventsPerSec records a second of
// recordBytes each, read by consumers with shared throughput, at ProvisionedUtilisation of
// their capacity: records and bytes in, and bytes out (2 MiB/s per shard, shared by the
// consumers). At least 1.
func ShardsFor(eventsPerSec, recordBytes float64, consumers int) int {
	need := max(eventsPerSec/KinesisShardRecordsPerSec, eventsPerSec*recordBytes/KinesisShardBytesPerSec,
		float64(consumers)*eventsPerSec*recordBytes/(2*KinesisShardBytesPerSec))
	return max(1, int(math.Ceil(need/ProvisionedUtilisation)))
}

// Provisioned turns inputs for an on-demand stream into the same pipeline on a provisioned
// stream sized by ShardsFor; putUnits is the records' mean PUT payload units.
func Provisioned(in CostInputs, recordBytes, putUnits float64) CostInputs {
	p := in
	p.StreamShards = ShardsFor(in.EventsPerSecond, recordBytes, in.StreamConsumers)
	p.PutUnitsPerRecord = max(1, putUnits)
	return p
}

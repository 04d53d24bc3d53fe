package main

import (
	"fmt"
	"math"
	"slices"
)

// AWS list prices, region us-east-1, on-demand, first pricing tier, in US dollars. They are
// the prices recorded in shared/reference/aws-notes.md ("Costs, us-east-1 list prices, late
// 2026") and on the AWS pricing pages named below; PricesAsOf is when they were copied here.
// Figures the reference notes do not carry are marked "unverified": copied from the pricing
// page named, not checked against a bill. Update all of them together, with the date.
const (
	PricesRegion = "us-east-1"
	PricesAsOf   = "2026-12-07"

	// APIGatewayRESTPerMillion: REST API requests, first 333 million a month;
	// APIGatewayHTTPPerMillion: HTTP API requests, first 300 million a month, each metered in
	// 512 KB increments (aws-notes.md; aws.amazon.com/api-gateway/pricing). Later tiers are
	// cheaper (REST $2.80 to 1 billion, HTTP $0.90 beyond 300 million: unverified); the model
	// prices the first tier, an upper bound.
	APIGatewayRESTPerMillion = 3.50
	APIGatewayHTTPPerMillion = 1.00
	// WAFRequestsPerMillion: requests a regional WAF web ACL inspects (-c wafRateLimit, REST
	// only: HTTP APIs cannot take a web ACL), plus $5 a month per ACL and $1 per rule, fixed
	// (aws.amazon.com/waf/pricing; unverified).
	WAFRequestsPerMillion = 0.60
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
	// (aws-notes.md: 1,000 records/s or 1 MiB/s; per consumer sharing it, it reads out twice
	// the bytes).
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

// The HTTP API door (-c api=http) replaces the REST API's keys and usage plans with a Lambda
// REQUEST authorizer for the publishable keys, whose answer API Gateway caches per key, and a
// per-app rate limiter in the ingest function that counts in memory and adds its count to a
// DynamoDB counter at most once a second per function instance.
const (
	// AuthorizerCacheSeconds: the authorizer's result TTL per identity source (the key header).
	// A busy key is authorised again once per TTL: 86,400/300 = 288 invocations a day.
	AuthorizerCacheSeconds = 300
	// AuthorizerMemoryMB, AuthorizerBilledMs: the authorizer function's size and billed time
	// (a map lookup of the key: assumed 128 MB and 2 ms, not measured; its cost is negligible
	// either way).
	AuthorizerMemoryMB = 128
	AuthorizerBilledMs = 2
	// LimiterWritesPerInstanceSecond: the rate limiter's DynamoDB UpdateItem calls per ingest
	// instance and second at most (a counter item under 1 KB: one write unit each).
	LimiterWritesPerInstanceSecond = 1
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
	// (LoggingFormat JSON, active tracing): platform.start and platform.report, both at the
	// INFO system log level. SystemLogLevel=WARN drops both (docs.aws.amazon.com/lambda/latest/dg/
	// monitoring-cloudwatchlogs-log-level.html: at INFO "Lambda automatically sends start and
	// report log messages").
	samplePlatformStart  = `{"time":"2026-11-28T23:07:27.205Z","type":"platform.start","record":{"requestId":"2e89084d-95e0-44a3-96a7-137c61ec3e6a","version":"$LATEST","tracing":{"spanId":"4b2c3a1f9e8d7c6b","type":"X-Amzn-Trace-Id","value":"Root=1-6749e8af-5d3c1b2a4f6e7d8c9b0a1f2e;Parent=1a2b3c4d5e6f7a8b;Sampled=1"}}}`
	samplePlatformReport = `{"time":"2026-11-28T23:07:27.212Z","type":"platform.report","record":{"requestId":"2e89084d-95e0-44a3-96a7-137c61ec3e6a","metrics":{"durationMs":6.42,"billedDurationMs":7,"memorySizeMB":256,"maxMemoryUsedMB":38},"tracing":{"spanId":"4b2c3a1f9e8d7c6b","type":"X-Amzn-Trace-Id","value":"Root=1-6749e8af-5d3c1b2a4f6e7d8c9b0a1f2e;Parent=1a2b3c4d5e6f7a8b;Sampled=1"},"status":"success"}}`
	// The REST API stage's access log line (infra/stack accessLogFormat) for a 202.
	sampleAccessLog = `{"requestId":"8f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b","requestTime":"1795907247205","httpMethod":"POST","resourcePath":"/v1/events","status":"202","responseLength":"29","responseLatency":"9","integrationLatency":"7","integrationStatus":"202","apiKeyId":"a1b2c3d4e5","errorType":"-","errorMessage":"-","xrayTraceId":"Root=1-6749e8af-5d3c1b2a4f6e7d8c9b0a1f2e"}`
	// An HTTP API stage's access log line (infra/stack httpAccessLogFormat, -c api=http) for a
	// 202: shorter, without a key id, X-Ray trace id or error type.
	sampleHTTPAccessLog = `{"requestId":"Dk2PqjKLoAMEVbA=","requestTime":"1795907247205","httpMethod":"POST","routeKey":"POST /v1/events","status":"202","responseLength":"29","responseLatency":"9","integrationLatency":"7","integrationStatus":"202","app":"sample-shop","authorizerError":"-","errorMessage":"-"}`
)

// PlatformLogBytesPerInvocation, AccessLogBytesPerRequest and HTTPAccessLogBytesPerRequest
// are the sizes of those lines.
var (
	PlatformLogBytesPerInvocation = float64(len(samplePlatformStart) + len(samplePlatformReport) + 2)
	AccessLogBytesPerRequest      = float64(len(sampleAccessLog) + 1)
	HTTPAccessLogBytesPerRequest  = float64(len(sampleHTTPAccessLog) + 1)
)

// FrontDoor is the API Gateway flavour in front of the ingest function (-c api=...).
type FrontDoor string

const (
	// DoorREST: a REST API with API keys and usage plans (the default).
	DoorREST FrontDoor = "rest"
	// DoorHTTP: an HTTP API with a cached Lambda authorizer for the publishable keys and a
	// per-app rate limiter in the ingest function (-c api=http).
	DoorHTTP FrontDoor = "http"
)

// Name is the door as the report prints it.
func (d FrontDoor) Name() string {
	if d == DoorHTTP {
		return "HTTP API"
	}
	return "REST API"
}

// FunctionLoad is what one Lambda function does per event.
type FunctionLoad struct {
	Name     string  `json:"name"`
	MemoryMB float64 `json:"memory_mb"`
	// InvocationsPerEvent is 1/(events per invocation).
	InvocationsPerEvent float64 `json:"invocations_per_event"`
	// BilledMs is the mean billed duration of one invocation (handler time rounded up to the ms).
	BilledMs float64 `json:"billed_ms"`
}

// FnAuthorizer names the HTTP API's Lambda authorizer in the model.
const FnAuthorizer = "authorizer"

// CostInputs are the per-event figures the model prices. Every field is documented with where
// the load test takes it from (see Measure and the README).
type CostInputs struct {
	// Door: the API in front ("" is DoorREST).
	Door FrontDoor `json:"front_door"`
	// EventsPerAPIRequest: events per API Gateway request (the client's batch size).
	EventsPerAPIRequest float64 `json:"events_per_api_request"`
	// Functions: the per-event functions (ingest, forwarder, updater). The HTTP API's
	// authorizer is added by the model.
	Functions []FunctionLoad `json:"functions"`
	// RecordsPerEvent: stream records per event, 1 with version 1 records, 1/(events per
	// record) with version 2 (a device's flush of 20 events is one record). 0 counts as 1.
	RecordsPerEvent float64 `json:"records_per_event"`
	// RecordKB: billed size of one stream record, the mean of ceil((data + partition key)/1 KB).
	RecordKB float64 `json:"record_kb"`
	// StreamShards: 0 for an on-demand stream (the default), else a provisioned stream's shards.
	StreamShards int `json:"stream_shards,omitempty"`
	// PutUnitsPerRecord: mean of ceil((data + partition key)/25 KB), for a provisioned stream.
	PutUnitsPerRecord float64 `json:"put_units_per_record,omitempty"`
	// StreamConsumers: consumers reading the stream without enhanced fan-out (2: forwarder, updater).
	StreamConsumers int `json:"stream_consumers"`
	// EventsPerSecond: the sustained rate the stream's hours, the authorizer's cache and the
	// rate limiter's instances are shared by.
	EventsPerSecond float64 `json:"events_per_second"`
	// WriteUnitsPerEvent, ReadUnitsPerEvent: DynamoDB request units per event.
	WriteUnitsPerEvent float64 `json:"write_units_per_event"`
	ReadUnitsPerEvent  float64 `json:"read_units_per_event"`
	// AppLogBytesPerEvent: bytes the functions log per event (JSON log and EMF lines). The
	// model adds Lambda's platform records per invocation and the access log line per request.
	AppLogBytesPerEvent float64 `json:"app_log_bytes_per_event"`
	// SystemLogWarn: the functions' SystemLogLevel is WARN, which drops platform.start and
	// platform.report (the default, INFO, sends both).
	SystemLogWarn bool `json:"system_log_level_warn,omitempty"`
	// WAF: a WAF web ACL inspects every request (REST only; -c wafRateLimit).
	WAF bool `json:"waf,omitempty"`
	// APIKeys: publishable keys in use (one per app), each authorised once per
	// AuthorizerCacheSeconds behind an HTTP API. 0 counts as 1.
	APIKeys int `json:"api_keys,omitempty"`
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
	ItemAPIGateway    = "API Gateway requests"
	ItemWAF           = "WAF requests"
	ItemLambdaReq     = "Lambda requests"
	ItemLambdaCompute = "Lambda compute (arm64 GB-s)"
	ItemKinesisIn     = "Kinesis data in"
	ItemKinesisOut    = "Kinesis data out"
	ItemKinesisHours  = "Kinesis stream hours"
	ItemKinesisPut    = "Kinesis PUT payload units"
	ItemKinesisShards = "Kinesis shard hours"
	ItemDynamoWrites  = "DynamoDB write units"
	ItemDynamoReads   = "DynamoDB read units"
	ItemRateLimiter   = "DynamoDB write units (rate limiter)"
	ItemLogs          = "CloudWatch Logs ingestion"
)

// recordsPerEvent is in.RecordsPerEvent, 1 when unset.
func (in CostInputs) recordsPerEvent() float64 {
	if in.RecordsPerEvent > 0 {
		return in.RecordsPerEvent
	}
	return 1
}

// function returns the load of the named function (zero if absent).
func (in CostInputs) function(name string) FunctionLoad {
	for _, f := range in.Functions {
		if f.Name == name {
			return f
		}
	}
	return FunctionLoad{}
}

// IngestInstances is the ingest function's concurrency at in's rate (Little's law: requests a
// second times the billed seconds of each), rounded up, at least 1: the instances the HTTP
// door's rate limiter writes from. Lambda keeps more instances warm under uneven traffic;
// each idle one writes nothing.
func IngestInstances(in CostInputs) float64 {
	ingest := in.function(FnIngest)
	if in.EventsPerSecond <= 0 || in.EventsPerAPIRequest <= 0 {
		return 1
	}
	return max(1, math.Ceil(in.EventsPerSecond/in.EventsPerAPIRequest*ingest.BilledMs/1000))
}

// AuthorizerLoad is the HTTP door's authorizer per event: each key is authorised once per
// AuthorizerCacheSeconds while it sends, so keys/(TTL x rate) invocations per event.
func AuthorizerLoad(in CostInputs) FunctionLoad {
	f := FunctionLoad{Name: FnAuthorizer, MemoryMB: AuthorizerMemoryMB, BilledMs: AuthorizerBilledMs}
	if in.EventsPerSecond > 0 {
		f.InvocationsPerEvent = float64(max(1, in.APIKeys)) / (AuthorizerCacheSeconds * in.EventsPerSecond)
	}
	return f
}

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
	functions := in.Functions
	accessLog := AccessLogBytesPerRequest
	if in.Door == DoorHTTP {
		add(ItemAPIGateway, perRequest*APIGatewayHTTPPerMillion,
			fmt.Sprintf("HTTP API: %.4g requests/event x $%.2f/M", perRequest, APIGatewayHTTPPerMillion))
		functions = append(slices.Clone(functions), AuthorizerLoad(in))
		accessLog = HTTPAccessLogBytesPerRequest
	} else {
		add(ItemAPIGateway, perRequest*APIGatewayRESTPerMillion,
			fmt.Sprintf("REST API: %.4g requests/event x $%.2f/M", perRequest, APIGatewayRESTPerMillion))
		if in.WAF {
			add(ItemWAF, perRequest*WAFRequestsPerMillion,
				fmt.Sprintf("%.4g requests/event x $%.2f/M (plus the ACL's fixed $7/month)", perRequest, WAFRequestsPerMillion))
		}
	}

	var invocations, gbSeconds float64
	for _, f := range functions {
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
	records := in.recordsPerEvent()
	if in.StreamShards > 0 {
		add(ItemKinesisPut, records*in.PutUnitsPerRecord*KinesisPutUnitsPerMillion,
			fmt.Sprintf("%.4g records/event x %.3g PUT units/record x $%.3f/M", records, in.PutUnitsPerRecord, KinesisPutUnitsPerMillion))
		add(ItemKinesisShards, hours*float64(in.StreamShards)*KinesisShardHour,
			fmt.Sprintf("%d shards, %.4g h/M at %.0f events/s x $%.3f/shard-h", in.StreamShards, hours, in.EventsPerSecond, KinesisShardHour))
	} else {
		gbPerMillion := records * in.RecordKB * 1024 * million / gib
		add(ItemKinesisIn, gbPerMillion*KinesisOnDemandPerGBIn,
			fmt.Sprintf("%.4g records/event x %.3g KB/record billed, %.4g GB/M x $%.2f/GB", records, in.RecordKB, gbPerMillion, KinesisOnDemandPerGBIn))
		add(ItemKinesisOut, gbPerMillion*float64(in.StreamConsumers)*KinesisOnDemandPerGBOut,
			fmt.Sprintf("%d consumers x %.4g GB/M x $%.2f/GB", in.StreamConsumers, gbPerMillion, KinesisOnDemandPerGBOut))
		add(ItemKinesisHours, hours*KinesisOnDemandPerStreamHour,
			fmt.Sprintf("1 stream, %.4g h/M at %.0f events/s x $%.2f/h", hours, in.EventsPerSecond, KinesisOnDemandPerStreamHour))
	}

	add(ItemDynamoWrites, in.WriteUnitsPerEvent*DynamoDBWriteUnitsPerMillion,
		fmt.Sprintf("%.3g WRU/event x $%.3f/M", in.WriteUnitsPerEvent, DynamoDBWriteUnitsPerMillion))
	add(ItemDynamoReads, in.ReadUnitsPerEvent*DynamoDBReadUnitsPerMillion,
		fmt.Sprintf("%.3g RRU/event x $%.3f/M", in.ReadUnitsPerEvent, DynamoDBReadUnitsPerMillion))
	if in.Door == DoorHTTP {
		limiter := 0.0
		instances := IngestInstances(in)
		if in.EventsPerSecond > 0 {
			limiter = instances * LimiterWritesPerInstanceSecond / in.EventsPerSecond
		}
		add(ItemRateLimiter, limiter*DynamoDBWriteUnitsPerMillion,
			fmt.Sprintf("%.0f ingest instances x %d WRU/s at %.0f events/s = %.3g WRU/event x $%.3f/M", instances,
				LimiterWritesPerInstanceSecond, in.EventsPerSecond, limiter, DynamoDBWriteUnitsPerMillion))
	}

	platform := invocations * PlatformLogBytesPerInvocation
	if in.SystemLogWarn {
		platform = 0
	}
	logBytes := in.AppLogBytesPerEvent + platform + perRequest*accessLog
	add(ItemLogs, logBytes*million/gib*CloudWatchLogsPerGB,
		fmt.Sprintf("%.0f B/event (functions %.0f, Lambda platform %.0f, access log %.0f) x $%.2f/GB", logBytes,
			in.AppLogBytesPerEvent, platform, perRequest*accessLog, CloudWatchLogsPerGB))
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
// event, what each function logs per invocation, the size of a user item and of a record of
// one event.
type NaiveFigures struct {
	// SingleEventMs: billed ms of one invocation with one event, by function name.
	SingleEventMs map[string]float64 `json:"single_event_billed_ms"`
	// LogBytesPerInvocation: bytes the functions log per invocation, by function name.
	LogBytesPerInvocation map[string]float64 `json:"log_bytes_per_invocation"`
	// WriteUnitsPerWrite: write units of one user item write (ceil(size / 1 KB)).
	WriteUnitsPerWrite float64 `json:"write_units_per_write"`
	// ReadUnitsPerRead: read units of one strongly consistent read of a user item.
	ReadUnitsPerRead float64 `json:"read_units_per_read"`
	// SingleEventRecordKB: billed KB of a record of one event (0: the batched design's record).
	SingleEventRecordKB float64 `json:"single_event_record_kb,omitempty"`
}

// NaiveInputs turns the batched design's inputs into a naive design's: one event per HTTP
// request, one invocation of every function per event (so one CAPI call per event), one
// DynamoDB read and one write per event, one stream record per event. The rate stays the same.
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
	naive.RecordsPerEvent = 1
	if n.SingleEventRecordKB > 0 {
		naive.RecordKB = n.SingleEventRecordKB
		naive.PutUnitsPerRecord = 1
	}
	return naive
}

// ShardsFor is the provisioned shards a stream needs for recordsPerSec records a second of
// recordBytes each, read by consumers with shared throughput, at ProvisionedUtilisation of
// their capacity: records and bytes in, and bytes out (2 MiB/s per shard, shared by the
// consumers). At least 1.
func ShardsFor(recordsPerSec, recordBytes float64, consumers int) int {
	need := max(recordsPerSec/KinesisShardRecordsPerSec, recordsPerSec*recordBytes/KinesisShardBytesPerSec,
		float64(consumers)*recordsPerSec*recordBytes/(2*KinesisShardBytesPerSec))
	return max(1, int(math.Ceil(need/ProvisionedUtilisation)))
}

// Provisioned turns inputs for an on-demand stream into the same pipeline on a provisioned
// stream sized by ShardsFor; recordBytes and putUnits are the records' mean size and PUT
// payload units.
func Provisioned(in CostInputs, recordBytes, putUnits float64) CostInputs {
	p := in
	p.StreamShards = ShardsFor(in.EventsPerSecond*in.recordsPerEvent(), recordBytes, in.StreamConsumers)
	p.PutUnitsPerRecord = max(1, putUnits)
	return p
}

// Design is one priced configuration: a front door and a stream mode.
type Design struct {
	Door        FrontDoor     `json:"front_door"`
	Provisioned bool          `json:"provisioned_stream"`
	Cost        CostBreakdown `json:"cost"`
}

// Name is the design as the report prints it.
func (d Design) Name() string {
	if d.Provisioned {
		return d.Door.Name() + ", provisioned stream"
	}
	return d.Door.Name() + ", on-demand stream"
}

// Designs prices in (an on-demand stream's inputs) behind each door, on an on-demand and on a
// provisioned stream, in that order.
func Designs(in CostInputs, doors []FrontDoor, recordBytes, putUnits float64) []Design {
	var out []Design
	for _, door := range doors {
		d := in
		d.Door = door
		if door == DoorHTTP {
			d.WAF = false // an HTTP API cannot take a web ACL
		}
		out = append(out, Design{Door: door, Cost: Model(d)},
			Design{Door: door, Provisioned: true, Cost: Model(Provisioned(d, recordBytes, putUnits))})
	}
	return out
}

// Cheapest returns the index of the design with the lowest total (-1 for none).
func Cheapest(designs []Design) int {
	best := -1
	for i, d := range designs {
		if best < 0 || d.Cost.Total < designs[best].Cost.Total {
			best = i
		}
	}
	return best
}

// AtRate reprices a design's inputs at another sustained rate: the stream's hours (and a
// provisioned stream's shards, resized), the authorizer's cache and the rate limiter's
// instances are shared by more events; every per-event figure stays as measured.
func AtRate(d Design, eventsPerSec, recordBytes float64) CostBreakdown {
	in := d.Cost.Inputs
	in.EventsPerSecond = eventsPerSec
	if d.Provisioned {
		in.StreamShards = ShardsFor(eventsPerSec*in.recordsPerEvent(), recordBytes, in.StreamConsumers)
	}
	return Model(in)
}

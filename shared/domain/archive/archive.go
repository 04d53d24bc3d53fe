// Package archive defines the archived row: one accepted event as the analytics archive keeps
// it, in the Parquet files of make dev's local archive and, in the stack, of the files Firehose
// writes from the stream. It is the stream envelope (package envelope) flattened into columns,
// still pseudonymised as on the stream (the user key and SHA-256 digests), minus the fields only
// Meta needs raw: the client IP address, the user agent, the advertising id (madid) and the
// install id (anon_id) are dropped unless the app opts in with "archive_raw_fields": true. The
// pseudonymous user key already serves every per-user analysis; the install id is dropped with
// the others because, like them, it is on the stream unhashed only for Meta's matching.
//
// Flat columns: Firehose's record format conversion reads JSON through a Glue table schema and
// does not take JSON arrays, so every top-level column is a scalar; the two lists of the event
// (custom_data.content_ids and custom_data.contents) are kept as JSON text in a string column,
// which survives any conversion unchanged, keeps the schema stable when a content item gains a
// field, and which Athena reads with json_extract or CAST(json_parse(c) AS ARRAY(VARCHAR)).
//
// Partitions: app and day, day being the UTC date of received_at (the ingest server's clock),
// not of the event's own time. A day's partition is complete once that day has passed: a late
// event (apps may send events up to 7 days old) or one recovered from the stream lands in the
// day it arrived, so files of past days never change (compaction, lifecycle and incremental
// loads can rely on it), and the day is a property of the record, so writing a batch again puts
// it in the same partition as the first time. Queries by event day filter on event_time and
// widen the partition range by the accepted lateness (see infra/docs/archive.md).
//
// The partition keys are not columns of the files (Athena refuses a column that repeats a
// partition key): they come from the path, app=<app>/day=<YYYY-MM-DD>/, as Hive-style tables
// read them. In JSON (what Firehose partitions on, what export writes) a row carries both.
//
// Delivery is at least once (a batch may be written again after a failure, Firehose retries):
// a row is identified by (app, event_id), and readers deduplicate on it (Key).
package archive

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// DayLayout is the format of the day partition key (UTC).
const DayLayout = "2006-01-02"

// RawFields are the envelope fields only Meta needs unhashed; the archive drops them unless the
// app opts in (appconfig.App.ArchiveRawFields). Names are the envelope's.
var RawFields = []string{"client_ip_address", "client_user_agent", "madid", "anon_id"}

// Row is one archived event. Field order is the column order. The parquet tags give the Parquet
// schema (optional columns are null when empty); the json tags the JSON form.
type Row struct {
	// App and Day are the partition keys: in the path, not in the file.
	App string `json:"app" parquet:"-"`
	Day string `json:"day" parquet:"-"`

	EnvelopeVersion int32  `json:"envelope_version" parquet:"envelope_version"`
	EventID         string `json:"event_id" parquet:"event_id"`
	EventName       string `json:"event_name" parquet:"event_name"`
	// EventTime is the event's own time, ReceivedAt the ingest server's: unix milliseconds in
	// JSON (Firehose parses epoch milliseconds into timestamps), timestamps in Parquet.
	EventTime  int64  `json:"event_time" parquet:"event_time,timestamp(millisecond)"`
	ReceivedAt int64  `json:"received_at" parquet:"received_at,timestamp(millisecond)"`
	UserKey    string `json:"user_key" parquet:"user_key"`
	Server     bool   `json:"server" parquet:"server"`

	KeySource       string `json:"key_source,omitempty" parquet:"key_source,optional"`
	ExternalID      string `json:"external_id,omitempty" parquet:"external_id,optional"`
	Email           string `json:"em,omitempty" parquet:"em,optional"`
	Phone           string `json:"ph,omitempty" parquet:"ph,optional"`
	FirstName       string `json:"fn,omitempty" parquet:"fn,optional"`
	LastName        string `json:"ln,omitempty" parquet:"ln,optional"`
	Gender          string `json:"ge,omitempty" parquet:"ge,optional"`
	DateOfBirth     string `json:"db,omitempty" parquet:"db,optional"`
	City            string `json:"ct,omitempty" parquet:"ct,optional"`
	State           string `json:"st,omitempty" parquet:"st,optional"`
	Zip             string `json:"zp,omitempty" parquet:"zp,optional"`
	Country         string `json:"country,omitempty" parquet:"country,optional"`
	AnonID          string `json:"anon_id,omitempty" parquet:"anon_id,optional"`
	MADID           string `json:"madid,omitempty" parquet:"madid,optional"`
	ClientIP        string `json:"client_ip_address,omitempty" parquet:"client_ip_address,optional"`
	ClientUserAgent string `json:"client_user_agent,omitempty" parquet:"client_user_agent,optional"`

	Platform       string   `json:"platform,omitempty" parquet:"platform,optional"`
	AppPackage     string   `json:"app_package,omitempty" parquet:"app_package,optional"`
	AppVersion     string   `json:"app_version,omitempty" parquet:"app_version,optional"`
	AppBuild       string   `json:"app_build,omitempty" parquet:"app_build,optional"`
	OSVersion      string   `json:"os_version,omitempty" parquet:"os_version,optional"`
	DeviceModel    string   `json:"device_model,omitempty" parquet:"device_model,optional"`
	Locale         string   `json:"locale,omitempty" parquet:"locale,optional"`
	TimezoneAbbr   string   `json:"timezone_abbr,omitempty" parquet:"timezone_abbr,optional"`
	Timezone       string   `json:"timezone,omitempty" parquet:"timezone,optional"`
	Carrier        string   `json:"carrier,omitempty" parquet:"carrier,optional"`
	ScreenWidth    *int64   `json:"screen_width,omitempty" parquet:"screen_width,optional"`
	ScreenHeight   *int64   `json:"screen_height,omitempty" parquet:"screen_height,optional"`
	ScreenDensity  *float64 `json:"screen_density,omitempty" parquet:"screen_density,optional"`
	CPUCores       *int64   `json:"cpu_cores,omitempty" parquet:"cpu_cores,optional"`
	StorageTotalGB *float64 `json:"storage_total_gb,omitempty" parquet:"storage_total_gb,optional"`
	StorageFreeGB  *float64 `json:"storage_free_gb,omitempty" parquet:"storage_free_gb,optional"`

	// Consent signals: null when the app did not report them.
	AdsPersonalization  *bool  `json:"ads_personalization,omitempty" parquet:"ads_personalization,optional"`
	AdvertiserTracking  *bool  `json:"advertiser_tracking_enabled,omitempty" parquet:"advertiser_tracking_enabled,optional"`
	ApplicationTracking *bool  `json:"application_tracking_enabled,omitempty" parquet:"application_tracking_enabled,optional"`
	LDU                 *bool  `json:"ldu,omitempty" parquet:"ldu,optional"`
	LDUCountry          *int64 `json:"ldu_country,omitempty" parquet:"ldu_country,optional"`
	LDUState            *int64 `json:"ldu_state,omitempty" parquet:"ldu_state,optional"`

	// Custom data. Value 0 is a real value (a free purchase), hence pointers.
	Value        *float64 `json:"value,omitempty" parquet:"value,optional"`
	Currency     string   `json:"currency,omitempty" parquet:"currency,optional"`
	ContentType  string   `json:"content_type,omitempty" parquet:"content_type,optional"`
	ContentIDs   string   `json:"content_ids,omitempty" parquet:"content_ids,optional"` // JSON array text
	Contents     string   `json:"contents,omitempty" parquet:"contents,optional"`       // JSON array text
	OrderID      string   `json:"order_id,omitempty" parquet:"order_id,optional"`
	NumItems     *int64   `json:"num_items,omitempty" parquet:"num_items,optional"`
	SearchString string   `json:"search_string,omitempty" parquet:"search_string,optional"`
	// SubscriptionExpiresAt is unix seconds, as on the stream.
	SubscriptionExpiresAt *int64   `json:"subscription_expires_at,omitempty" parquet:"subscription_expires_at,optional"`
	PredictedLTV          *float64 `json:"predicted_ltv,omitempty" parquet:"predicted_ltv,optional"`
	Status                string   `json:"status,omitempty" parquet:"status,optional"`
	Description           string   `json:"description,omitempty" parquet:"description,optional"`
	Level                 string   `json:"level,omitempty" parquet:"level,optional"`
	MaxRatingValue        *float64 `json:"max_rating_value,omitempty" parquet:"max_rating_value,optional"`
	Success               *bool    `json:"success,omitempty" parquet:"success,optional"`
}

// Key identifies a row across redeliveries and rewrites: readers keep one row per key.
type Key struct{ App, EventID string }

// Key returns the row's identity.
func (r *Row) Key() Key { return Key{r.App, r.EventID} }

// Partition is one app's day: the directory its rows are written under.
type Partition struct{ App, Day string }

// Partition returns the row's partition.
func (r *Row) Partition() Partition { return Partition{r.App, r.Day} }

// Dir is the partition's Hive-style directory, relative to the archive root.
func (p Partition) Dir() string { return "app=" + p.App + "/day=" + p.Day }

// DayOf returns the day partition of a received_at time (unix milliseconds): its UTC date.
func DayOf(receivedAtMillis int64) string {
	return time.UnixMilli(receivedAtMillis).UTC().Format(DayLayout)
}

// Options say what the app lets the archive keep.
type Options struct {
	// KeepRawFields keeps RawFields (appconfig.App.ArchiveRawFields).
	KeepRawFields bool
}

// FromRecord maps a decoded stream record to its archived row.
func FromRecord(rec *envelope.Record, o Options) (Row, error) {
	ev := &rec.Event
	u, d, c, cd := &ev.User, &ev.Device, &ev.Consent, &ev.Custom
	r := Row{
		App:             rec.App,
		Day:             DayOf(rec.ReceivedAt),
		EnvelopeVersion: int32(rec.V),
		EventID:         ev.ID,
		EventName:       ev.Name,
		EventTime:       ev.Time * 1000,
		ReceivedAt:      rec.ReceivedAt,
		UserKey:         rec.UserKey,
		Server:          ev.Server,

		KeySource:   string(u.KeySource),
		ExternalID:  hexOf(u.ExternalID),
		Email:       hexOf(u.Email),
		Phone:       hexOf(u.Phone),
		FirstName:   hexOf(u.FirstName),
		LastName:    hexOf(u.LastName),
		Gender:      hexOf(u.Gender),
		DateOfBirth: hexOf(u.DateOfBirth),
		City:        hexOf(u.City),
		State:       hexOf(u.State),
		Zip:         hexOf(u.Zip),
		Country:     hexOf(u.Country),

		Platform:       d.Platform,
		AppPackage:     d.AppPackage,
		AppVersion:     d.AppVersion,
		AppBuild:       d.AppBuild,
		OSVersion:      d.OSVersion,
		DeviceModel:    d.DeviceModel,
		Locale:         d.Locale,
		TimezoneAbbr:   d.TimezoneAbbr,
		Timezone:       d.Timezone,
		Carrier:        d.Carrier,
		ScreenWidth:    nonZero(d.ScreenWidth),
		ScreenHeight:   nonZero(d.ScreenHeight),
		ScreenDensity:  nonZero(d.ScreenDensity),
		CPUCores:       nonZero(d.CPUCores),
		StorageTotalGB: nonZero(d.StorageTotalGB),
		StorageFreeGB:  nonZero(d.StorageFreeGB),

		AdsPersonalization:  flag(c.AdsPersonalization),
		AdvertiserTracking:  flag(c.AdvertiserTracking),
		ApplicationTracking: flag(c.ApplicationTracking),
		LDU:                 flag(c.LDU),
		LDUCountry:          nonZero(c.LDUCountry),
		LDUState:            nonZero(c.LDUState),

		Value:                 optFloat(cd.Value),
		Currency:              cd.Currency,
		ContentType:           cd.ContentType,
		OrderID:               cd.OrderID,
		NumItems:              nonZero(cd.NumItems),
		SearchString:          cd.SearchString,
		SubscriptionExpiresAt: nonZero(cd.SubscriptionExpiresAt),
		PredictedLTV:          optFloat(cd.PredictedLTV),
		Status:                cd.Status,
		Description:           cd.Description,
		Level:                 cd.Level,
		MaxRatingValue:        optFloat(cd.MaxRatingValue),
		Success:               flag(cd.Success),
	}
	if o.KeepRawFields {
		r.MADID, r.ClientIP, r.ClientUserAgent, r.AnonID = u.MADID, u.ClientIP, u.ClientUserAgent, u.AnonID
	}
	var err error
	if r.ContentIDs, err = jsonList(cd.ContentIDs); err != nil {
		return Row{}, fmt.Errorf("archive: content_ids of event %s: %w", ev.ID, err)
	}
	if r.Contents, err = jsonList(cd.Contents); err != nil {
		return Row{}, fmt.Errorf("archive: contents of event %s: %w", ev.ID, err)
	}
	return r, nil
}

// Decode decodes a stream record of any version and maps its events, in order (the archiver's
// one step per record). A version 2 record gives one row per event, all of one app and day.
func Decode(data []byte, opt func(app string) Options) ([]Row, error) {
	recs, err := envelope.Decode(data)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, len(recs))
	o := opt(recs[0].App)
	for i := range recs {
		if rows[i], err = FromRecord(&recs[i], o); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

// Dedupe keeps the first row of each Key, in order.
func Dedupe(rows []Row) []Row {
	seen := make(map[Key]bool, len(rows))
	out := rows[:0:0]
	for i := range rows {
		k := rows[i].Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, rows[i])
	}
	return out
}

func jsonList[T any](list []T) (string, error) {
	if len(list) == 0 {
		return "", nil
	}
	b, err := json.Marshal(list)
	return string(b), err
}

func nonZero[T int64 | float64](v T) *T {
	if v == 0 {
		return nil
	}
	return &v
}

func flag(f envelope.Flag) *bool {
	if f.IsZero() {
		return nil
	}
	b := f.IsTrue()
	return &b
}

func optFloat(o envelope.OptFloat) *float64 {
	if !o.Set {
		return nil
	}
	v := o.V
	return &v
}

// hexOf writes a digest as the stream does (lowercase hex), or "" when absent.
func hexOf(h identity.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

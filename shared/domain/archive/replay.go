package archive

import (
	"encoding/json"
	"fmt"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// ToRecord maps an archived row back to the stream record it was archived from, for replay
// (retarget archive replay). It is FromRecord's inverse on the columns the archive keeps:
//
//   - what the archive dropped stays dropped: the raw fields (RawFields) are filled only where
//     the row has them (the app opted in with archive_raw_fields), and the app's own user id,
//     which the archive never keeps, is absent;
//   - received_at is the original arrival, not the time of the replay, so the event keeps its
//     day partition and its place in time for every consumer;
//   - the record is marked Replay, so consumers can tell it from an event an app sent.
//
// The record is pseudonymised exactly as the row is (user key, SHA-256 digests). A row whose
// digests or lists do not parse, or written from another envelope version, is refused.
func ToRecord(r *Row) (*envelope.Record, error) {
	if r.EnvelopeVersion < envelope.MinVersion || r.EnvelopeVersion > envelope.Version {
		return nil, fmt.Errorf("archive: event %s was archived from envelope version %d, this build reads %d to %d", r.EventID, r.EnvelopeVersion, envelope.MinVersion, envelope.Version)
	}
	if r.App == "" || r.UserKey == "" || r.EventID == "" || r.EventName == "" {
		return nil, fmt.Errorf("archive: row of event %q lacks app, user_key, event_id or event_name", r.EventID)
	}
	rec := &envelope.Record{
		V:          envelope.Version,
		App:        r.App,
		UserKey:    r.UserKey,
		ReceivedAt: r.ReceivedAt,
		Replay:     true,
		Event: envelope.Event{
			ID:     r.EventID,
			Name:   r.EventName,
			Time:   r.EventTime / 1000, // archived from whole seconds: exact
			Server: r.Server,
			User: envelope.User{
				KeySource:       identity.IDKind(r.KeySource),
				AnonID:          r.AnonID,
				MADID:           r.MADID,
				ClientIP:        r.ClientIP,
				ClientUserAgent: r.ClientUserAgent,
			},
			Device: envelope.Device{
				Platform:       r.Platform,
				AppPackage:     r.AppPackage,
				AppVersion:     r.AppVersion,
				AppBuild:       r.AppBuild,
				OSVersion:      r.OSVersion,
				DeviceModel:    r.DeviceModel,
				Locale:         r.Locale,
				TimezoneAbbr:   r.TimezoneAbbr,
				Timezone:       r.Timezone,
				Carrier:        r.Carrier,
				ScreenWidth:    deref(r.ScreenWidth),
				ScreenHeight:   deref(r.ScreenHeight),
				ScreenDensity:  deref(r.ScreenDensity),
				CPUCores:       deref(r.CPUCores),
				StorageTotalGB: deref(r.StorageTotalGB),
				StorageFreeGB:  deref(r.StorageFreeGB),
			},
			Consent: envelope.Consent{
				AdsPersonalization:  flagOf(r.AdsPersonalization),
				AdvertiserTracking:  flagOf(r.AdvertiserTracking),
				ApplicationTracking: flagOf(r.ApplicationTracking),
				LDU:                 flagOf(r.LDU),
				LDUCountry:          deref(r.LDUCountry),
				LDUState:            deref(r.LDUState),
			},
			Custom: envelope.CustomData{
				Value:                 optFloatOf(r.Value),
				Currency:              r.Currency,
				ContentType:           r.ContentType,
				OrderID:               r.OrderID,
				NumItems:              deref(r.NumItems),
				SearchString:          r.SearchString,
				SubscriptionExpiresAt: deref(r.SubscriptionExpiresAt),
				PredictedLTV:          optFloatOf(r.PredictedLTV),
				Status:                r.Status,
				Description:           r.Description,
				Level:                 r.Level,
				MaxRatingValue:        optFloatOf(r.MaxRatingValue),
				Success:               flagOf(r.Success),
			},
		},
	}
	u := &rec.Event.User
	for _, h := range []struct {
		column string
		hex    string
		to     *identity.Hash
	}{
		{"external_id", r.ExternalID, &u.ExternalID}, {"em", r.Email, &u.Email}, {"ph", r.Phone, &u.Phone},
		{"fn", r.FirstName, &u.FirstName}, {"ln", r.LastName, &u.LastName}, {"ge", r.Gender, &u.Gender},
		{"db", r.DateOfBirth, &u.DateOfBirth}, {"ct", r.City, &u.City}, {"st", r.State, &u.State},
		{"zp", r.Zip, &u.Zip}, {"country", r.Country, &u.Country},
	} {
		if h.hex == "" {
			continue
		}
		v, ok := identity.ParseHash(h.hex)
		if !ok {
			return nil, fmt.Errorf("archive: %s of event %s is not a SHA-256 hex digest", h.column, r.EventID)
		}
		*h.to = v
	}
	cd := &rec.Event.Custom
	if err := fromJSONList(r.ContentIDs, &cd.ContentIDs); err != nil {
		return nil, fmt.Errorf("archive: content_ids of event %s: %w", r.EventID, err)
	}
	if err := fromJSONList(r.Contents, &cd.Contents); err != nil {
		return nil, fmt.Errorf("archive: contents of event %s: %w", r.EventID, err)
	}
	return rec, nil
}

// fromJSONList reads a list column (JSON array text; "" for none).
func fromJSONList[T any](text string, to *[]T) error {
	if text == "" {
		return nil
	}
	return json.Unmarshal([]byte(text), to)
}

func deref[T int64 | float64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

func flagOf(b *bool) envelope.Flag {
	if b == nil {
		return envelope.Unset
	}
	return envelope.FlagOf(*b)
}

func optFloatOf(p *float64) envelope.OptFloat {
	if p == nil {
		return envelope.OptFloat{}
	}
	return envelope.Float(*p)
}

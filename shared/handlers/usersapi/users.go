package usersapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/retarget-dev/retarget/shared/adapters/apigw"
	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/segments"
	"github.com/retarget-dev/retarget/shared/ports"
)

// Defaults of the erasure settings.
const (
	// DefaultTombstoneTTL keeps an erased user's hashed identifiers long enough for the audience
	// sync to remove the user from every audience, retries and pauses included.
	DefaultTombstoneTTL = 30 * 24 * time.Hour
	// DefaultAuditRetention keeps erasure audit records three years.
	DefaultAuditRetention = 3 * 365 * 24 * time.Hour
)

// ErasureResponse is the body of a 202 to DELETE /v1/users/{app_user_id}.
type ErasureResponse struct {
	ErasureID string `json:"erasure_id"`
}

// ConsentBody is the body of PUT /v1/users/{app_user_id}/consent: any of the four decisions.
type ConsentBody struct {
	AdsPersonalization  *bool `json:"ads_personalization,omitempty"`
	AdvertiserTracking  *bool `json:"advertiser_tracking_enabled,omitempty"`
	ApplicationTracking *bool `json:"application_tracking_enabled,omitempty"`
	LDU                 *bool `json:"ldu,omitempty"`
}

// ConsentResponse is the body of a 200 to PUT .../consent: the decision now in force.
type ConsentResponse struct {
	AppUserID string      `json:"app_user_id"`
	Consent   ConsentBody `json:"consent"`
}

// erase handles DELETE /v1/users/{app_user_id}. In this order, each step idempotent:
//  1. an explicit withdrawal carrying the erasure id is stored, so from now on the forwarder
//     and the updater ignore the user's events (until an explicit grant);
//  2. the user's state is replaced by a tombstone holding only the consent withdrawal and the
//     hashed identifiers the audience sync needs to remove the user's rows, expiring after
//     TombstoneTTL; a leave change is recorded for every segment the user was in, so the next
//     sync removes the user from each audience;
//  3. the audit record is stored (erasure id, app, pseudonymous key, times, audiences).
//
// An unknown user gets the same answer (no existence oracle). A repeated request returns the
// first erasure's id and completes whatever an interrupted one left undone.
func (h *Handler) erase(ctx context.Context, app *appconfig.App, key string) events.APIGatewayProxyResponse {
	if h.cfg.Consents == nil {
		return apigw.Error(http.StatusNotImplemented, "erasure is not configured on this deployment")
	}
	now := h.cfg.Now()
	prev, err := h.cfg.Consents.Consents(ctx, app.ID, []string{key})
	if err != nil {
		return h.unavailable(app, "read consent", err)
	}
	id, repeated := prev[key].ErasureID, true
	if id == "" || !prev[key].Withdrawn() {
		id, repeated = newErasureID(), false
		if err := h.cfg.Consents.PutConsent(ctx, ports.UserConsent{App: app.ID, UserKey: key, At: now.Unix(), ErasureID: id}); err != nil {
			return h.unavailable(app, "store the withdrawal", err)
		}
	}
	left, err := h.tombstone(ctx, app.ID, key, now)
	if err != nil {
		return h.unavailable(app, "erase state", err)
	}
	if !repeated {
		var auds []string
		if aa := h.cfg.Audiences[app.ID]; aa != nil {
			for _, seg := range left {
				if _, ok := aa.Audience(seg); ok {
					auds = append(auds, seg)
				}
			}
		}
		rec := ports.ErasureRecord{ID: id, App: app.ID, UserKey: key, RequestedAt: now.Unix(), CompletedAt: h.cfg.Now().Unix(),
			Audiences: auds, ExpiresAt: now.Add(h.cfg.AuditRetention).Unix()}
		if err := h.cfg.Consents.PutErasure(ctx, rec); err != nil {
			return h.unavailable(app, "store the audit record", err)
		}
	}
	// Never the app_user_id: it may be personal data.
	h.cfg.Logger.Info("user erased", "app", app.ID, "erasure_id", id, "repeated", repeated, "segments_left", len(left))
	return apigw.JSON(http.StatusAccepted, ErasureResponse{ErasureID: id})
}

// tombstone replaces the user's state (if any) by its tombstone and records a leave change per
// segment the user was in; it returns those segments. Nothing is written when the state
// already is a tombstone.
func (h *Handler) tombstone(ctx context.Context, app, key string, now time.Time) ([]string, error) {
	var left []string
	_, err := h.cfg.Store.Update(ctx, app, key, func(u *ports.UserState) error {
		left = nil
		if !u.Found {
			return ports.ErrNothingToWrite
		}
		st := &u.State
		kept := segments.State{Consent: st.Consent, Email: st.Email, Phone: st.Phone, MADID: st.MADID}
		if st.Consent.Withdrawn && len(u.Segments) == 0 && bytes.Equal(mustJSON(kept), mustJSON(*st)) {
			return ports.ErrNothingToWrite // already a tombstone: nothing but a withdrawal and the identifiers
		}
		left = slices.Clone(u.Segments)
		u.State = segments.State{Consent: segments.Consent{At: now.Unix(), Withdrawn: true}, Email: st.Email, Phone: st.Phone, MADID: st.MADID}
		u.Segments, u.DueAt, u.ExpiresAt = nil, 0, now.Add(h.cfg.TombstoneTTL).Unix()
		u.ChangedAt, u.RecordedAt, u.Reason = now.UnixMilli(), h.cfg.Now(), ports.ReasonErasure
		return nil
	})
	if err != nil {
		return nil, err
	}
	return left, nil
}

// consent handles PUT /v1/users/{app_user_id}/consent: it merges the body into the user's
// explicit decision (a field left out keeps its earlier value; ads personalisation defaults
// to granted, which restricts nothing: the events' own consent still applies) and, when the
// body decides ads personalisation, folds it into the user's state at once, so a withdrawal
// takes the user out of every segment (and audience at the next sync) and a grant lets the
// rules decide again; so is a Limited Data Use decision, which takes the user out of every
// audience at the next sync (or lets them back) without changing their segments.
func (h *Handler) consent(ctx context.Context, app *appconfig.App, userID, key, raw string) events.APIGatewayProxyResponse {
	if h.cfg.Consents == nil {
		return apigw.Error(http.StatusNotImplemented, "consent is not configured on this deployment")
	}
	body, problem := parseConsentBody(raw)
	if problem != "" {
		return apigw.Error(http.StatusBadRequest, problem)
	}
	now := h.cfg.Now()
	prev, err := h.cfg.Consents.Consents(ctx, app.ID, []string{key})
	if err != nil {
		return h.unavailable(app, "read consent", err)
	}
	c, had := prev[key]
	if !had {
		c = ports.UserConsent{App: app.ID, UserKey: key, AdsPersonalization: true}
	}
	c.At = now.Unix()
	if body.AdsPersonalization != nil {
		c.AdsPersonalization = *body.AdsPersonalization
		if c.AdsPersonalization {
			c.ErasureID = "" // an explicit grant ends the erasure's block
		}
	}
	for _, f := range []struct{ dst, src **bool }{{&c.AdvertiserTracking, &body.AdvertiserTracking},
		{&c.ApplicationTracking, &body.ApplicationTracking}, {&c.LDU, &body.LDU}} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
	if err := h.cfg.Consents.PutConsent(ctx, c); err != nil {
		return h.unavailable(app, "store consent", err)
	}
	if body.AdsPersonalization != nil || body.LDU != nil {
		if err := h.foldConsent(ctx, app.ID, key, body.AdsPersonalization, body.LDU, now); err != nil {
			return h.unavailable(app, "apply consent to the state", err)
		}
	}
	h.cfg.Logger.Info("consent recorded", "app", app.ID, "ads_personalization", c.AdsPersonalization)
	ads := c.AdsPersonalization
	return apigw.JSON(http.StatusOK, ConsentResponse{AppUserID: userID, Consent: ConsentBody{
		AdsPersonalization: &ads, AdvertiserTracking: c.AdvertiserTracking, ApplicationTracking: c.ApplicationTracking, LDU: c.LDU}})
}

// foldConsent records the decisions the body made (ads personalisation granted, Limited Data
// Use; nil: not decided) in the user's state as the updater would, records the membership
// changes they cause and writes the state (the store's Update: optimistic version, retried).
// An LDU decision leaves the segments as they are; Update records rejoins when it turns the
// user's LDU on or off, so the next audience sync removes them (or adds them back). An unknown
// user is left alone: the decision is in the consent store already (the updater folds it in
// with their first events).
func (h *Handler) foldConsent(ctx context.Context, app, key string, granted, ldu *bool, now time.Time) error {
	rules := h.cfg.Rules[app]
	_, err := h.cfg.Store.Update(ctx, app, key, func(u *ports.UserState) error {
		if !u.Found {
			return ports.ErrNothingToWrite
		}
		if granted != nil {
			u.State.DecideConsent(*granted, now.Unix())
		}
		if ldu != nil {
			u.State.RecordLDUDecision(*ldu, now.Unix())
		}
		after, due := rules.Evaluate(&u.State, now)
		u.Segments, u.DueAt = after, segments.DueAt(due)
		if u.State.LastSeen > 0 {
			u.ExpiresAt = time.Unix(u.State.LastSeen, 0).Add(h.cfg.UserTTL).Unix()
		}
		u.ChangedAt, u.RecordedAt, u.Reason = now.UnixMilli(), h.cfg.Now(), ports.ReasonConsent
		return nil
	})
	return err
}

// parseConsentBody decodes the body strictly: a JSON object with at least one of the four
// fields, booleans only, nothing else.
func parseConsentBody(raw string) (ConsentBody, string) {
	const shape = `body must be a JSON object with any of "ads_personalization", "advertiser_tracking_enabled", "application_tracking_enabled", "ldu" (booleans)`
	var b ConsentBody
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return b, shape + ": " + err.Error()
	}
	if dec.More() {
		return b, shape + ": unexpected data after the object"
	}
	if b.AdsPersonalization == nil && b.AdvertiserTracking == nil && b.ApplicationTracking == nil && b.LDU == nil {
		return b, shape + ": none given"
	}
	return b, ""
}

func (h *Handler) unavailable(app *appconfig.App, what string, err error) events.APIGatewayProxyResponse {
	h.cfg.Logger.Error(what, "app", app.ID, "error", err.Error())
	return apigw.Error(http.StatusServiceUnavailable, "user store unavailable, retry (the request is idempotent)")
}

func newErasureID() string {
	var b [12]byte
	rand.Read(b[:])
	return "er_" + hex.EncodeToString(b[:])
}

func mustJSON(st segments.State) []byte {
	b, err := json.Marshal(&st)
	if err != nil {
		panic(err) // State always encodes
	}
	return b
}

package appevent

// Cross-field rules, identity (normalisation, hashing, the pseudonymous key) and consent.

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/retarget-dev/retarget/shared/domain/appconfig"
	"github.com/retarget-dev/retarget/shared/domain/envelope"
	"github.com/retarget-dev/retarget/shared/domain/identity"
)

// validate applies the cross-field rules and fills the record's identity fields.
func (st *state) validate() {
	ev := &st.ev
	a := st.cur
	e := &a.ev

	// event_id: 1-128 characters of [A-Za-z0-9._:-], stable across client retries.
	switch {
	case !ev.hasID || ev.id == "":
		st.reject("event_id", "required", "is required")
	case len(ev.id) > 128:
		st.reject("event_id", "too_long", "at most 128 characters")
	case !validEventID(ev.id):
		st.reject("event_id", "invalid", "only letters, digits, '-', '_', '.' and ':' are allowed")
	default:
		if j, dup := st.seenID(ev.id); dup {
			st.reject("event_id", "duplicate", "repeats the event_id of events["+strconv.Itoa(j)+"]")
		}
		e.ID = ev.id
	}

	if !ev.hasName || ev.name == "" {
		st.reject("event_name", "required", "is required")
	} else if code, reason := checkEventName(ev.name); code != "" {
		st.reject("event_name", code, reason)
	} else {
		e.Name = ev.name
	}
	purchase := e.Name != "" && CAPIName(e.Name) == "Purchase"

	if !ev.timeSet {
		if !st.hasError("event_time") {
			st.reject("event_time", "required", "is required (unix seconds or RFC 3339)")
		}
	} else {
		t := time.Unix(ev.time, 0)
		switch {
		case st.now.Sub(t) > MaxEventAge:
			st.reject("event_time", "too_old", "older than 7 days: Meta refuses such events")
		case t.Sub(st.now) > MaxClockSkew:
			st.reject("event_time", "in_future", "more than 5 minutes in the future: check the device clock")
		}
		e.Time = ev.time
	}

	// device: platform and os_version feed Meta's extinfo and are required.
	d := st.deviceAt(a.device)
	if d == nil {
		d = &envelope.Device{}
	}
	if !ev.hasDevice {
		if !st.hasError("device") {
			st.reject("device", "required", "is required (platform and os_version)")
		}
	} else {
		switch p := appconfig.Platform(d.Platform); {
		case d.Platform == "":
			if !st.hasError("device.platform") {
				st.reject("device.platform", "required", "is required (ios or android)")
			}
		case p != appconfig.PlatformIOS && p != appconfig.PlatformAndroid:
			st.reject("device.platform", "invalid", "must be ios or android")
		case !st.app.Supports(p):
			st.reject("device.platform", "unsupported", "platform "+d.Platform+" is not configured for app "+st.app.ID)
		}
		if d.OSVersion == "" && !st.hasError("device.os_version") {
			st.reject("device.os_version", "required", "is required")
		}
		if d.StorageFreeGB > d.StorageTotalGB && d.StorageTotalGB > 0 {
			st.reject("device.storage_free_gb", "out_of_range", "exceeds storage_total_gb")
		}
	}

	c := &e.Consent
	if d.Platform == string(appconfig.PlatformIOS) && c.AdvertiserTracking == envelope.Unset && !st.hasError("consent.advertiser_tracking_enabled") {
		st.reject("consent.advertiser_tracking_enabled", "required", "is required for ios events (the App Tracking Transparency status)")
	}
	if c.LDUCountry != 0 && c.LDUState == 0 {
		st.reject("consent.ldu_state", "required", "is required when ldu_country is set (Meta: a country needs a state; 0,0 lets Meta geolocate)")
	}

	cd := &e.Custom
	if cd.Currency != "" {
		if m := &st.currencyMemo; cd.Currency == m.in {
			cd.Currency = m.out
		} else {
			cur, ok := identity.Currency(cd.Currency)
			if !ok {
				st.reject("custom_data.currency", "invalid", "not an ISO 4217 currency code (e.g. USD)")
			} else {
				m.in, m.out = cd.Currency, cur
			}
			cd.Currency = cur
		}
	}
	if cd.Value.Set && cd.Currency == "" && !st.hasError("custom_data.currency") {
		st.reject("custom_data.currency", "required", "is required when value is set (ISO 4217, e.g. USD)")
	}
	// Meta refuses purchases without an amount (the SDK's logPurchase requires one too).
	if purchase && !cd.Value.Set && !st.hasError("custom_data.value") {
		st.reject("custom_data.value", "required", "is required for purchases (with currency)")
	}

	st.identify()
}

// identify derives the user key and the stream's user fields. Without consent to ads
// personalisation every identifier is dropped here, at the edge, after the key is derived.
//
// Events of one request often repeat a user object (every event of one device does): when the
// object's JSON text and the consent signals that shape the result equal those of an earlier
// event of the request whose object was valid, its result is reused instead of normalising,
// hashing and keying again.
func (st *state) identify() {
	ev := &st.ev
	a := st.cur
	if !ev.hasUser {
		if !st.hasError("user") {
			st.reject("user", "required", "is required (with at least one of app_user_id, anon_id, madid)")
		}
		return
	}
	consent := &a.ev.Consent
	ads, att := consent.AdsPersonalization, consent.AdvertiserTracking
	obj := &st.objs[ev.obj]
	for u := obj.user; u >= 0; u = st.users[u].nextOfObj {
		if e := &st.users[u]; e.ads == ads && e.att == att {
			a.user = u
			st.dropWithoutConsent()
			return
		}
	}
	before := len(st.errs)
	key, user, ok := st.deriveUser(*consent)
	if !ok || len(st.errs) > before {
		return // the event is rejected
	}
	a.user = int32(len(st.users))
	st.users = append(st.users, userEntry{ads: ads, att: att, nextOfObj: obj.user, key: key, user: user, group: -1})
	obj.user = a.user
	st.dropWithoutConsent()
}

// dropWithoutConsent keeps no identifiers of an event without consent to remarketing (privacy
// by construction): its user object holds none (see deriveUser), and its device and custom data
// go too.
func (st *state) dropWithoutConsent() {
	if a := st.cur; !a.ev.Consent.AdsPersonalization.IsTrue() {
		a.device = -1
		a.ev.Custom = envelope.CustomData{}
	}
}

// deriveUser validates the user object, derives the user key and, with consent, normalises and
// hashes the personal fields. ok is false when the event has no usable identifier.
func (st *state) deriveUser(consent envelope.Consent) (key string, u envelope.User, ok bool) {
	raw := &st.objs[st.ev.obj].fields
	appUserID := st.identifier(uAppUserID, 256)
	anonID := st.identifier(uAnonID, 128)
	madid := ""
	if m := trim(raw[uMADID]); m != "" {
		if !isUUID(m) {
			st.reject("user.madid", "invalid", "not an advertising id (IDFA/GAID UUID, 8-4-4-4-12 hex)")
		} else if m != zeroMADID {
			if mm := &st.madidMemo; m == mm.in {
				madid = mm.out
			} else {
				madid = lowerUUID(m) // upper-case iOS IDFAs allocate: once per request and id
				mm.in, mm.out = m, madid
			}
		}
	}
	var kind identity.IDKind
	var id string
	switch {
	case appUserID != "":
		kind, id = identity.KindAppUserID, appUserID
	case anonID != "":
		kind, id = identity.KindAnonID, anonID
	case madid != "":
		kind, id = identity.KindMADID, madid
	default:
		if !st.hasError("user.") {
			reason := "at least one of app_user_id, anon_id, madid is required"
			if trim(raw[uMADID]) == zeroMADID {
				reason += " (madid is all zeros: tracking is not authorised on this device; send anon_id)"
			}
			st.reject("user", "required", reason)
		}
		return "", u, false
	}
	key = st.keyer.UserKey(st.app.ID, kind, id)
	if !consent.AdsPersonalization.IsTrue() {
		return key, u, true // identifiers are neither validated nor kept: see identify
	}
	u.KeySource = kind
	u.AnonID = anonID
	if consent.AdvertiserTracking != envelope.False {
		u.MADID = madid
	}
	if ip := trim(raw[uClientIP]); ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			st.reject("user.client_ip_address", "invalid", "not an IPv4 or IPv6 address")
		} else {
			u.ClientIP = ip
		}
	}
	if ua := raw[uClientUA]; ua != "" {
		if len(ua) > 1024 || hasControl(ua) {
			st.reject("user.client_user_agent", "invalid", "must be at most 1024 bytes without control characters")
		} else {
			u.ClientUserAgent = ua
		}
	}

	country := ""
	if s := raw[uCountry]; s != "" {
		if m := &st.countryMemo; s == m.in {
			country, u.Country = m.code, m.hash
		} else if c, err := identity.NormalizeCountry(trim(s)); err != nil {
			st.identityError(uCountry, err)
		} else {
			country = c
			u.Country, _ = identity.CountryHash(c)
			m.in, m.code, m.hash = s, c, u.Country
		}
	}
	if appUserID != "" {
		u.ExternalID, _ = st.norm.HashField(identity.ExternalID, appUserID, "")
		if st.app.ShareAppUserID {
			u.AppUserID = appUserID // for the app's channels (segment events); raw only here
		}
	}
	for _, f := range hashedUserFields {
		if raw[f.key] == "" {
			continue
		}
		h, err := st.norm.HashField(f.field, raw[f.key], country)
		switch {
		case err == nil:
			*u.Hashed(f.field) = h
		case errors.Is(err, identity.ErrEmpty):
			// empty after normalisation: omitted, as Meta asks
		default:
			st.identityError(f.key, err)
		}
	}
	return key, u, true
}

// lowerUUID returns a UUID (isUUID) in lower case: itself when it is, otherwise one copy (no
// strings.Builder).
func lowerUUID(s string) string {
	var b [36]byte
	upper := false
	for i := range b {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
			upper = true
		}
		b[i] = c
	}
	if !upper {
		return s
	}
	return string(b[:])
}

func (st *state) identityError(key int, err error) {
	var ie *identity.Error
	if errors.As(err, &ie) {
		st.reject("user."+userKeys[key], ie.Code, ie.Reason)
		return
	}
	st.reject("user."+userKeys[key], "invalid", err.Error())
}

// identifier validates app_user_id or anon_id.
func (st *state) identifier(key, max int) string {
	s := trim(st.objs[st.ev.obj].fields[key])
	switch {
	case s == "":
		return ""
	case len(s) > max:
		st.reject("user."+userKeys[key], "too_long", "at most "+strconv.Itoa(max)+" bytes")
		return ""
	case hasControl(s):
		st.reject("user."+userKeys[key], "invalid_characters", "contains control characters")
		return ""
	}
	return s
}

func (st *state) hasError(prefix string) bool {
	want := st.fieldPath(prefix)
	for _, e := range st.errs {
		if strings.HasPrefix(e.Field, want) {
			return true
		}
	}
	return false
}

func (st *state) seenID(id string) (int, bool) {
	t := &st.tabs.ids
	h := hashString(id)
	s, i := t.probe(h)
	for ; !t.free(s); s, i = t.next(i) {
		if s.hi == uint32(h>>32) && st.seen[s.v] == id {
			return int(s.v), true
		}
	}
	for len(st.seen) < st.idx { // seen is indexed by position in the request
		st.seen = append(st.seen, "")
	}
	st.seen = append(st.seen[:st.idx], id)
	t.put(s, h, st.idx)
	return 0, false
}

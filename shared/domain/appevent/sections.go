package appevent

// Readers of the event's objects: user, device, consent and custom_data.

import (
	"strconv"
	"strings"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

// The members of the objects of an event, by position in these sets.
var (
	deviceKeys = newKeySet("platform", "app_package", "app_version", "app_build", "os_version", "device_model",
		"locale", "timezone_abbr", "carrier", "timezone", "screen_width", "screen_height", "cpu_cores",
		"screen_density", "storage_total_gb", "storage_free_gb")
	consentKeys = newKeySet("ads_personalization", "advertiser_tracking_enabled", "application_tracking_enabled",
		"ldu", "ldu_country", "ldu_state")
	customKeys = newKeySet("value", "predicted_ltv", "max_rating_value", "currency", "content_ids", "contents",
		"content_type", "order_id", "num_items", "search_string", "status", "description", "level", "success",
		"subscription_expires_at")
	contentKeys = newKeySet("id", "quantity", "item_price")
)

// readUser reads the event's user object. An object the request has already carried (byte for
// byte, without errors) is not read again: the event refers to the first reading.
func (st *state) readUser() {
	ev := &st.ev
	ev.hasUser = false
	if o := st.lastObj - 1; o >= 0 && st.sc.repeats(st.objs[o].raw) {
		ev.hasUser, ev.obj = true, o
		return
	}
	o, miss := st.findObj()
	if o >= 0 {
		ev.hasUser, ev.obj, st.lastObj = true, o, o+1
		return
	}
	st.lastObj = 0
	if st.sc.isNull() {
		return
	}
	if st.sc.peek() != '{' {
		st.typeError("user", "an object")
		return
	}
	// One slot per event: a repeated "user" member of the event replaces the slot it read
	// before, so that the objects (and the table's entries) stay within one per event.
	start, errs := st.sc.i, len(st.errs)
	o = ev.ownObj - 1
	if o < 0 {
		o = int32(len(st.objs))
		if len(st.objs) == cap(st.objs) {
			st.objs = append(st.objs, userObj{})
		}
		st.objs = st.objs[:o+1]
		st.objs[o].indexed = false
		ev.ownObj = o + 1
	}
	obj := &st.objs[o]
	*obj = userObj{user: -1, indexed: obj.indexed}
	for first := true; ; {
		i, ok := st.sc.memberOf(&first, userKeySet, &st.guess.user)
		if !ok {
			break
		}
		if i < 0 {
			st.sc.skip(1)
			continue
		}
		if st.sc.peek() == '"' {
			obj.fields[i] = st.sc.str()
		} else if !st.sc.isNull() {
			st.typeError("user."+userKeys[i], "a string")
		}
	}
	ev.hasUser, ev.obj = true, o
	if st.sc.err == nil && len(st.errs) == errs {
		obj.raw = st.sc.s[start:st.sc.i]
		if !obj.indexed {
			st.addObj(o, miss)
			obj.indexed = true
		}
		st.lastObj = o + 1
	}
}

// objKey is what the user object table hashes: the object's text up to its first '}' (all
// of it for a flat object). The text at the scanner starts with a known object only if it
// has that object's key, and finding the key needs no parsing.
func objKey(s string) (string, bool) {
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return "", false
	}
	return s[:end+1], true
}

// objMiss is where a lookup of an object's text ended: its hash and the free slot the probe
// reached, so that indexing the same object next costs neither a second hash nor a second probe.
type objMiss struct {
	h    uint64
	slot *tableSlot
}

// findObj looks the value at the scanner up among the request's user objects and, when it is
// one of them, moves past it and returns its index; otherwise -1 and, when it hashed the text,
// where the lookup ended (for addObj).
func (st *state) findObj() (int32, objMiss) {
	rest := st.sc.s[st.sc.i:]
	if len(st.objs) == 0 || len(rest) == 0 || rest[0] != '{' {
		return -1, objMiss{}
	}
	k, ok := objKey(rest)
	if !ok {
		return -1, objMiss{}
	}
	t := &st.tabs.objs
	h := hashString(k)
	s, i := t.probe(h)
	for ; !t.free(s); s, i = t.next(i) {
		if s.hi == uint32(h>>32) {
			if raw := st.objs[s.v].raw; raw != "" && len(raw) <= len(rest) && rest[:len(raw)] == raw {
				st.sc.i += len(raw)
				return s.v, objMiss{}
			}
		}
	}
	return -1, objMiss{h: h, slot: s}
}

// addObj indexes the user object o (read without errors) for findObj. A slot is indexed once
// (by its first text: a later text in the slot is then found by the event after it only), so
// the table holds at most one entry per event. miss is findObj's answer for the same text
// (nothing was indexed in between), or zero.
func (st *state) addObj(o int32, miss objMiss) {
	t := &st.tabs.objs
	if miss.slot != nil {
		t.put(miss.slot, miss.h, int(o))
		return
	}
	k, _ := objKey(st.objs[o].raw)
	h := hashString(k)
	s, i := t.probe(h)
	for !t.free(s) {
		s, i = t.next(i)
	}
	t.put(s, h, int(o))
}

func (st *state) device(d *envelope.Device) bool {
	if st.sc.isNull() {
		return false
	}
	if st.sc.peek() != '{' {
		st.typeError("device", "an object")
		return false
	}
	for first := true; ; {
		k, ok := st.sc.memberOf(&first, deviceKeys, &st.guess.device)
		if !ok {
			break
		}
		switch k {
		case 0: // platform
			d.Platform = st.boundedString("device.platform", 16)
		case 1: // app_package
			d.AppPackage = st.boundedString("device.app_package", 256)
		case 2: // app_version
			d.AppVersion = st.boundedString("device.app_version", 64)
		case 3: // app_build
			d.AppBuild = st.boundedString("device.app_build", 64)
		case 4: // os_version
			d.OSVersion = st.boundedString("device.os_version", 64)
		case 5: // device_model
			d.DeviceModel = st.boundedString("device.device_model", 128)
		case 6: // locale
			d.Locale = st.boundedString("device.locale", 32)
		case 7: // timezone_abbr
			d.TimezoneAbbr = st.boundedString("device.timezone_abbr", 16)
		case 8: // carrier
			d.Carrier = st.boundedString("device.carrier", 128)
		case 9: // timezone
			d.Timezone = st.boundedString("device.timezone", 64)
		case 10: // screen_width
			d.ScreenWidth = st.count("device.screen_width", 100000)
		case 11: // screen_height
			d.ScreenHeight = st.count("device.screen_height", 100000)
		case 12: // cpu_cores
			d.CPUCores = st.count("device.cpu_cores", 1024)
		case 13: // screen_density
			d.ScreenDensity = st.nonNegativeFloat("device.screen_density")
		case 14: // storage_total_gb
			d.StorageTotalGB = st.nonNegativeFloat("device.storage_total_gb")
		case 15: // storage_free_gb
			d.StorageFreeGB = st.nonNegativeFloat("device.storage_free_gb")
		default:
			st.sc.skip(1)
		}
	}
	return true
}

func (st *state) consent(c *envelope.Consent) {
	if st.sc.isNull() {
		return
	}
	if st.sc.peek() != '{' {
		st.typeError("consent", "an object")
		return
	}
	for first := true; ; {
		k, ok := st.sc.memberOf(&first, consentKeys, &st.guess.consent)
		if !ok {
			break
		}
		switch k {
		case 0: // ads_personalization
			c.AdsPersonalization = st.flag("consent.ads_personalization")
		case 1: // advertiser_tracking_enabled
			c.AdvertiserTracking = st.flag("consent.advertiser_tracking_enabled")
		case 2: // application_tracking_enabled
			c.ApplicationTracking = st.flag("consent.application_tracking_enabled")
		case 3: // ldu
			c.LDU = st.flag("consent.ldu")
		case 4: // ldu_country
			c.LDUCountry = st.count("consent.ldu_country", 1000)
		case 5: // ldu_state
			c.LDUState = st.count("consent.ldu_state", 100000)
		default:
			st.sc.skip(1)
		}
	}
}

// Limits of custom_data.
const (
	maxContentItems = 1000
	maxShortString  = 256
	maxLongString   = 1024
)

func (st *state) custom(c *envelope.CustomData) {
	if st.sc.isNull() {
		return
	}
	if st.sc.peek() != '{' {
		st.typeError("custom_data", "an object")
		return
	}
	for first := true; ; {
		k, ok := st.sc.memberOf(&first, customKeys, &st.guess.custom)
		if !ok {
			break
		}
		switch k {
		case 0: // value
			if v, ok := st.float("custom_data.value"); ok {
				c.Value = envelope.Float(v)
			}
		case 1: // predicted_ltv
			if v, ok := st.float("custom_data.predicted_ltv"); ok {
				c.PredictedLTV = envelope.Float(v)
			}
		case 2: // max_rating_value
			if v, ok := st.float("custom_data.max_rating_value"); ok {
				c.MaxRatingValue = envelope.Float(v)
			}
		case 3: // currency
			c.Currency = st.boundedString("custom_data.currency", 8)
		case 4: // content_ids
			c.ContentIDs = st.contentIDs()
		case 5: // contents
			c.Contents = st.contents()
		case 6: // content_type
			c.ContentType = st.boundedString("custom_data.content_type", 64)
		case 7: // order_id
			c.OrderID = st.boundedString("custom_data.order_id", maxShortString)
		case 8: // num_items
			c.NumItems = st.count("custom_data.num_items", 1_000_000)
		case 9: // search_string
			c.SearchString = st.boundedString("custom_data.search_string", maxLongString)
		case 10: // status
			c.Status = st.boundedString("custom_data.status", maxShortString)
		case 11: // description
			c.Description = st.boundedString("custom_data.description", maxLongString)
		case 12: // level
			c.Level = st.boundedString("custom_data.level", maxShortString)
		case 13: // success
			c.Success = st.flag("custom_data.success")
		case 14: // subscription_expires_at
			if t, ok := st.timestamp("custom_data.subscription_expires_at"); ok {
				c.SubscriptionExpiresAt = t
			}
		default:
			st.sc.skip(1)
		}
	}
}

func (st *state) contentIDs() []string {
	if st.sc.isNull() {
		return nil
	}
	if st.sc.peek() != '[' {
		st.typeError("custom_data.content_ids", "an array of strings")
		return nil
	}
	start := len(st.idArena)
	n := 0
	for first := true; st.sc.element(&first); n++ {
		field := "custom_data.content_ids"
		if st.sc.peek() != '"' {
			st.typeError(field+"["+strconv.Itoa(n)+"]", "a string")
			continue
		}
		s := st.sc.str()
		switch {
		case n >= maxContentItems:
			if n == maxContentItems {
				st.reject(field, "too_long", "at most 1000 content ids")
			}
		case s == "" || len(s) > maxShortString:
			st.reject(field+"["+strconv.Itoa(n)+"]", "invalid", "must be 1 to 256 bytes")
		default:
			if st.idArena == nil {
				st.idArena = make([]string, 0, 256)
			}
			st.idArena = append(st.idArena, s)
		}
	}
	if len(st.idArena) == start {
		return nil
	}
	return st.idArena[start:len(st.idArena):len(st.idArena)]
}

func (st *state) contents() []envelope.Content {
	if st.sc.isNull() {
		return nil
	}
	if st.sc.peek() != '[' {
		st.typeError("custom_data.contents", "an array of objects")
		return nil
	}
	start := len(st.contentArena)
	n := 0
	for first := true; st.sc.element(&first); n++ {
		st.item = n // fills in "[]" of the field paths below, on error only
		if st.sc.peek() != '{' {
			st.typeError("custom_data.contents[]", "an object")
			continue
		}
		var item envelope.Content
		for f := true; ; {
			k, ok := st.sc.memberOf(&f, contentKeys, &st.guess.content)
			if !ok {
				break
			}
			switch k {
			case 0: // id
				switch st.sc.peek() {
				case '"':
					item.ID = st.sc.str()
					if len(item.ID) > maxShortString || hasControl(item.ID) {
						st.reject("custom_data.contents[].id", "invalid", "must be at most 256 bytes without control characters")
					}
				case 'n':
					st.sc.literal("null")
				default:
					st.typeError("custom_data.contents[].id", "a string")
				}
			case 1: // quantity
				item.Quantity = st.count("custom_data.contents[].quantity", 1_000_000)
			case 2: // item_price
				if v, ok := st.float("custom_data.contents[].item_price"); ok {
					item.ItemPrice = envelope.Float(v)
				}
			default:
				st.sc.skip(1)
			}
		}
		switch {
		case n >= maxContentItems:
			if n == maxContentItems {
				st.reject("custom_data.contents", "too_long", "at most 1000 items")
			}
		case item.ID == "":
			st.reject("custom_data.contents[].id", "required", "is required")
		default:
			if st.contentArena == nil {
				st.contentArena = make([]envelope.Content, 0, 128)
			}
			st.contentArena = append(st.contentArena, item)
		}
	}
	if len(st.contentArena) == start {
		return nil
	}
	return st.contentArena[start:len(st.contentArena):len(st.contentArena)]
}

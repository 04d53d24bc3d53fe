package appevent

// Readers of the event's objects: user, device, consent and custom_data.

import (
	"strconv"

	"github.com/retarget-dev/retarget/shared/domain/envelope"
)

func (st *state) user() bool {
	if st.sc.isNull() {
		return false
	}
	if st.sc.peek() != '{' {
		st.typeError("user", "an object")
		return false
	}
	for first := true; st.sc.member(&first); {
		k := st.sc.lastKey
		i := userKeyIndex(k)
		if i < 0 {
			st.sc.skip(1)
			continue
		}
		if st.sc.peek() == '"' {
			st.ev.user[i] = st.sc.str()
		} else if !st.sc.isNull() {
			st.typeError("user."+k, "a string")
		}
	}
	return true
}

func (st *state) device(d *envelope.Device) bool {
	if st.sc.isNull() {
		return false
	}
	if st.sc.peek() != '{' {
		st.typeError("device", "an object")
		return false
	}
	for first := true; st.sc.member(&first); {
		switch k := st.sc.lastKey; k {
		case "platform":
			d.Platform = st.boundedString("device.platform", 16)
		case "app_package":
			d.AppPackage = st.boundedString("device.app_package", 256)
		case "app_version":
			d.AppVersion = st.boundedString("device.app_version", 64)
		case "app_build":
			d.AppBuild = st.boundedString("device.app_build", 64)
		case "os_version":
			d.OSVersion = st.boundedString("device.os_version", 64)
		case "device_model":
			d.DeviceModel = st.boundedString("device.device_model", 128)
		case "locale":
			d.Locale = st.boundedString("device.locale", 32)
		case "timezone_abbr":
			d.TimezoneAbbr = st.boundedString("device.timezone_abbr", 16)
		case "carrier":
			d.Carrier = st.boundedString("device.carrier", 128)
		case "timezone":
			d.Timezone = st.boundedString("device.timezone", 64)
		case "screen_width":
			d.ScreenWidth = st.count("device.screen_width", 100000)
		case "screen_height":
			d.ScreenHeight = st.count("device.screen_height", 100000)
		case "cpu_cores":
			d.CPUCores = st.count("device.cpu_cores", 1024)
		case "screen_density":
			d.ScreenDensity = st.nonNegativeFloat("device.screen_density")
		case "storage_total_gb":
			d.StorageTotalGB = st.nonNegativeFloat("device.storage_total_gb")
		case "storage_free_gb":
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
	for first := true; st.sc.member(&first); {
		switch st.sc.lastKey {
		case "ads_personalization":
			c.AdsPersonalization = st.flag("consent.ads_personalization")
		case "advertiser_tracking_enabled":
			c.AdvertiserTracking = st.flag("consent.advertiser_tracking_enabled")
		case "application_tracking_enabled":
			c.ApplicationTracking = st.flag("consent.application_tracking_enabled")
		case "ldu":
			c.LDU = st.flag("consent.ldu")
		case "ldu_country":
			c.LDUCountry = st.count("consent.ldu_country", 1000)
		case "ldu_state":
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
	for first := true; st.sc.member(&first); {
		switch k := st.sc.lastKey; k {
		case "value":
			if v, ok := st.float("custom_data.value"); ok {
				c.Value = envelope.Float(v)
			}
		case "predicted_ltv":
			if v, ok := st.float("custom_data.predicted_ltv"); ok {
				c.PredictedLTV = envelope.Float(v)
			}
		case "max_rating_value":
			if v, ok := st.float("custom_data.max_rating_value"); ok {
				c.MaxRatingValue = envelope.Float(v)
			}
		case "currency":
			c.Currency = st.boundedString("custom_data.currency", 8)
		case "content_ids":
			c.ContentIDs = st.contentIDs()
		case "contents":
			c.Contents = st.contents()
		case "content_type":
			c.ContentType = st.boundedString("custom_data.content_type", 64)
		case "order_id":
			c.OrderID = st.boundedString("custom_data.order_id", maxShortString)
		case "num_items":
			c.NumItems = st.count("custom_data.num_items", 1_000_000)
		case "search_string":
			c.SearchString = st.boundedString("custom_data.search_string", maxLongString)
		case "status":
			c.Status = st.boundedString("custom_data.status", maxShortString)
		case "description":
			c.Description = st.boundedString("custom_data.description", maxLongString)
		case "level":
			c.Level = st.boundedString("custom_data.level", maxShortString)
		case "success":
			c.Success = st.flag("custom_data.success")
		case "subscription_expires_at":
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
		for f := true; st.sc.member(&f); {
			switch st.sc.lastKey {
			case "id":
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
			case "quantity":
				item.Quantity = st.count("custom_data.contents[].quantity", 1_000_000)
			case "item_price":
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

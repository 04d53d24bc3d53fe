package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Population is a synthetic app audience. User k (0 <= k < Size) is drawn with probability
// proportional to (V+k)^-S (a Zipf law): a few heavy users send much of the traffic, most users
// are seen rarely, as in real apps. Everything about user k (platform, identifiers, personal
// fields, consent) is derived from Seed and k alone, so a user looks the same in every request
// and in every run with the same seed.
type Population struct {
	Size int     // number of distinct users
	S    float64 // Zipf exponent, > 1
	V    float64 // Zipf offset, >= 1: a larger V flattens the head
	// ConsentRate is the share of users who granted ads_personalization; of the others, one in
	// three sends no consent object at all (an app that never asked).
	ConsentRate float64
	Seed        uint64
	// Platforms are the app's configured platforms (ios, android).
	Platforms []string
}

// User is one synthetic user with the fields a mobile SDK sends.
type User struct {
	Rank     int
	Consent  bool // ads_personalization granted
	Platform string
	Fields   eventUser
	Device   eventDevice
	Consents *eventConsent // nil: the app sent no consent object
	Currency string
}

// Event mix: what one event of a mobile session is, with the share of each name. The shares
// follow the funnel of a shopping app: an open starts a session of about ten events, mostly
// product views; a third of carts reach a purchase.
var eventMix = []struct {
	Name  string
	Share float64
}{
	{"fb_mobile_activate_app", 0.10},
	{"fb_mobile_content_view", 0.52},
	{"fb_mobile_search", 0.09},
	{"fb_mobile_add_to_cart", 0.11},
	{"fb_mobile_add_to_wishlist", 0.04},
	{"fb_mobile_initiated_checkout", 0.05},
	{"fb_mobile_purchase", 0.03},
	{"fb_mobile_complete_registration", 0.02},
	{"MobileAppInstall", 0.01},
	{"fb_mobile_tutorial_completion", 0.02},
	{"Subscribe", 0.01},
}

// Wire types of the ingest API v1 request (see functions/README.md, "Ingest API v1"); only what the
// generator sends.
type (
	eventRequest struct {
		Events []*event `json:"events"`
	}
	event struct {
		EventID   string        `json:"event_id"`
		EventName string        `json:"event_name"`
		EventTime int64         `json:"event_time"`
		User      *eventUser    `json:"user"`
		Device    *eventDevice  `json:"device"`
		Consent   *eventConsent `json:"consent,omitempty"`
		Custom    *customData   `json:"custom_data,omitempty"`
	}
	eventUser struct {
		AppUserID string `json:"app_user_id,omitempty"`
		AnonID    string `json:"anon_id,omitempty"`
		MADID     string `json:"madid,omitempty"`
		Email     string `json:"email,omitempty"`
		Phone     string `json:"phone,omitempty"`
		FirstName string `json:"first_name,omitempty"`
		LastName  string `json:"last_name,omitempty"`
		Gender    string `json:"gender,omitempty"`
		Birth     string `json:"date_of_birth,omitempty"`
		City      string `json:"city,omitempty"`
		State     string `json:"state,omitempty"`
		Zip       string `json:"zip,omitempty"`
		Country   string `json:"country,omitempty"`
		IP        string `json:"client_ip_address,omitempty"`
		UserAgent string `json:"client_user_agent,omitempty"`
	}
	eventDevice struct {
		Platform      string  `json:"platform"`
		AppPackage    string  `json:"app_package"`
		AppVersion    string  `json:"app_version"`
		AppBuild      string  `json:"app_build"`
		OSVersion     string  `json:"os_version"`
		DeviceModel   string  `json:"device_model"`
		Locale        string  `json:"locale"`
		TimezoneAbbr  string  `json:"timezone_abbr"`
		Carrier       string  `json:"carrier,omitempty"`
		ScreenWidth   int     `json:"screen_width"`
		ScreenHeight  int     `json:"screen_height"`
		ScreenDensity float64 `json:"screen_density"`
		CPUCores      int     `json:"cpu_cores"`
		StorageTotal  int     `json:"storage_total_gb"`
		StorageFree   int     `json:"storage_free_gb"`
		Timezone      string  `json:"timezone"`
	}
	eventConsent struct {
		AdsPersonalization  bool  `json:"ads_personalization"`
		AdvertiserTracking  *bool `json:"advertiser_tracking_enabled,omitempty"`
		ApplicationTracking bool  `json:"application_tracking_enabled"`
	}
	customData struct {
		Value        *float64  `json:"value,omitempty"`
		Currency     string    `json:"currency,omitempty"`
		ContentIDs   []string  `json:"content_ids,omitempty"`
		ContentType  string    `json:"content_type,omitempty"`
		Contents     []content `json:"contents,omitempty"`
		OrderID      string    `json:"order_id,omitempty"`
		NumItems     int       `json:"num_items,omitempty"`
		SearchString string    `json:"search_string,omitempty"`
		SubExpiresAt int64     `json:"subscription_expires_at,omitempty"`
	}
	content struct {
		ID        string  `json:"id"`
		Quantity  int     `json:"quantity"`
		ItemPrice float64 `json:"item_price"`
	}
)

// Where users live: country, currency, phone format, cities. Names and numbers are made up
// (555 numbers, example.com addresses); they only need the shapes the pipeline normalises.
type region struct {
	Country, Currency, Locale, TZ, TZAbbr string
	Share                                 float64
	Cities                                [][3]string // city, state, zip
	Phone                                 func(r *rand.Rand) string
}

var regions = []region{
	{"US", "USD", "en_US", "America/New_York", "EST", 0.45, [][3]string{{"New York", "NY", "10001"}, {"Menlo Park", "California", "94025-1234"}, {"Austin", "TX", "73301"}},
		func(r *rand.Rand) string { return fmt.Sprintf("(650) 555-%04d", r.IntN(10000)) }},
	{"DE", "EUR", "de_DE", "Europe/Berlin", "CET", 0.15, [][3]string{{"Berlin", "", "10115"}, {"München", "", "80331"}},
		func(r *rand.Rand) string { return fmt.Sprintf("030 555%05d", r.IntN(100000)) }},
	{"FR", "EUR", "fr_FR", "Europe/Paris", "CET", 0.10, [][3]string{{"Paris", "", "75001"}, {"Lyon", "", "69001"}},
		func(r *rand.Rand) string {
			return fmt.Sprintf("+33 6 55 %02d %02d %02d", r.IntN(100), r.IntN(100), r.IntN(100))
		}},
	{"GB", "GBP", "en_GB", "Europe/London", "GMT", 0.15, [][3]string{{"London", "", "SW1A 1AA"}, {"Leeds", "", "LS1 4DY"}},
		func(r *rand.Rand) string { return fmt.Sprintf("+44 7700 9%05d", r.IntN(100000)) }},
	{"CA", "CAD", "en_CA", "America/Toronto", "EST", 0.10, [][3]string{{"Toronto", "ON", "M5H 2N2"}, {"Montréal", "QC", "H2Y 1C6"}},
		func(r *rand.Rand) string { return fmt.Sprintf("+1 416 555 %04d", r.IntN(10000)) }},
	{"JP", "JPY", "ja_JP", "Asia/Tokyo", "JST", 0.05, [][3]string{{"Tokyo", "", "100-0001"}},
		func(r *rand.Rand) string { return fmt.Sprintf("+81 90 5555 %04d", r.IntN(10000)) }},
}

var (
	firstNames = []string{"Mary", "José", "Aiko", "Jean-Luc", "Zoë", "Ahmed", "Olga", "Chen", "Priya", "Tom"}
	lastNames  = []string{"Major", "García", "Tanaka", "O'Neil", "Müller", "Smith", "Nguyen", "Kowalski", "Dubois", "Lee"}
	androids   = []struct{ Model, OS string }{{"Pixel 8", "14"}, {"SM-S918B", "14"}, {"Pixel 6a", "13"}, {"moto g54", "13"}, {"SM-A546B", "14"}}
	iphones    = []struct{ Model, OS string }{{"iPhone15,2", "17.4.1"}, {"iPhone14,5", "17.2"}, {"iPhone16,1", "17.5"}, {"iPhone13,2", "16.7.8"}}
	carriers   = []string{"Verizon", "T-Mobile", "Vodafone", "Orange", "O2", "Rogers", "NTT DOCOMO", ""}
)

// User returns user k of the population.
func (p *Population) User(k int) User {
	r := rand.New(rand.NewPCG(p.Seed^0x9e3779b97f4a7c15, uint64(k)))
	u := User{Rank: k}
	u.Platform = "android"
	if len(p.Platforms) > 0 {
		u.Platform = p.Platforms[0]
		if len(p.Platforms) > 1 && r.Float64() < 0.45 { // iOS share of a typical Western app
			u.Platform = p.Platforms[1]
		}
	}
	region := pickRegion(r.Float64())
	u.Currency = region.Currency

	// Identifiers: 70% of users are logged in (app_user_id); the rest are known by their
	// install id only. Advertising ids: most Android devices, iOS only with ATT granted.
	f := &u.Fields
	loggedIn := r.Float64() < 0.70
	if loggedIn {
		f.AppUserID = "u-" + strconv.Itoa(k)
	} else {
		f.AnonID = uuidFrom(r)
	}
	att := u.Platform != "ios" || r.Float64() < 0.35 // iOS ATT opt-in rate
	if att && r.Float64() < 0.85 {
		f.MADID = uuidFrom(r)
	}
	first, last := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	if loggedIn && r.Float64() < 0.90 {
		// Mixed case and a stray space, as typed: the pipeline normalises before hashing.
		f.Email = fmt.Sprintf(" %s.%s%d@Example.com", strings.ReplaceAll(first, " ", ""), strings.ReplaceAll(last, "'", ""), k)
	}
	if r.Float64() < 0.40 {
		f.Phone = region.Phone(r)
	}
	if loggedIn && r.Float64() < 0.50 {
		f.FirstName, f.LastName = first, last
	}
	if r.Float64() < 0.20 {
		f.Gender = []string{"f", "m", "Female", "Male"}[r.IntN(4)]
	}
	if r.Float64() < 0.15 {
		f.Birth = fmt.Sprintf("%d-%02d-%02d", 1960+r.IntN(45), 1+r.IntN(12), 1+r.IntN(28))
	}
	if r.Float64() < 0.90 {
		f.Country = region.Country
		if r.Float64() < 0.5 {
			c := region.Cities[r.IntN(len(region.Cities))]
			f.City, f.State, f.Zip = c[0], c[1], c[2]
		}
	}
	if r.Float64() < 0.5 {
		f.IP = fmt.Sprintf("203.0.113.%d", 1+r.IntN(254))
	}

	d := &u.Device
	d.Platform, d.AppPackage, d.AppVersion = u.Platform, "com.example.shop", []string{"3.2.0", "3.2.1", "3.3.0"}[r.IntN(3)]
	d.AppBuild = "32" + strconv.Itoa(r.IntN(10))
	d.Locale, d.Timezone, d.TimezoneAbbr = region.Locale, region.TZ, region.TZAbbr
	d.Carrier = carriers[r.IntN(len(carriers))]
	d.CPUCores = []int{6, 8}[r.IntN(2)]
	d.StorageTotal = []int{64, 128, 256}[r.IntN(3)]
	d.StorageFree = r.IntN(d.StorageTotal)
	if u.Platform == "ios" {
		m := iphones[r.IntN(len(iphones))]
		d.DeviceModel, d.OSVersion = m.Model, m.OS
		d.ScreenWidth, d.ScreenHeight, d.ScreenDensity = 1179, 2556, 3
		f.UserAgent = "ShopApp/" + d.AppVersion + " (iPhone; iOS " + d.OSVersion + ")"
	} else {
		m := androids[r.IntN(len(androids))]
		d.DeviceModel, d.OSVersion = m.Model, m.OS
		d.ScreenWidth, d.ScreenHeight, d.ScreenDensity = 1080, 2400, 2.75
		f.UserAgent = "ShopApp/" + d.AppVersion + " (Linux; Android " + d.OSVersion + ")"
	}

	draw := r.Float64()
	u.Consent = draw < p.ConsentRate
	noConsentObject := !u.Consent && draw > p.ConsentRate+(1-p.ConsentRate)*2/3
	if !noConsentObject {
		c := &eventConsent{AdsPersonalization: u.Consent, ApplicationTracking: true}
		if u.Platform == "ios" {
			c.AdvertiserTracking = &att
		}
		u.Consents = c
	} else if u.Platform == "ios" {
		// iOS events must carry the ATT status even when the app asked nothing else.
		u.Consents = &eventConsent{AdvertiserTracking: &att, ApplicationTracking: true}
	}
	return u
}

// pickRegion maps x in [0, 1) to a region by the regions' shares.
func pickRegion(x float64) *region {
	for i := range regions {
		if x < regions[i].Share {
			return &regions[i]
		}
		x -= regions[i].Share
	}
	return &regions[0]
}

// uuidFrom draws a random version 4 UUID.
func uuidFrom(r *rand.Rand) string {
	a, b := r.Uint64(), r.Uint64()
	a = a&^(0xf<<12) | 4<<12
	b = b&^(0x3<<62) | 0x2<<62
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// RequestShape says how the events of one request are grouped.
type RequestShape string

const (
	// ShapeDevice: each request is one device's flush, all events of one user (what the Meta
	// app SDK and most analytics SDKs send).
	ShapeDevice RequestShape = "device"
	// ShapeMixed: each event of a request belongs to another user (a server relaying many
	// devices' events).
	ShapeMixed RequestShape = "mixed"
)

// Generator builds the requests of a load test. It is not safe for concurrent use: one
// goroutine (the pacer) draws every request, so a run is reproducible from its seed.
type Generator struct {
	pop   *Population
	rng   *rand.Rand
	zipf  *rand.Zipf
	runID string
	seq   uint64
	// PerRequest is the number of events per request.
	PerRequest int
	Shape      RequestShape
	cumulative []float64
}

// NewGenerator returns a generator of requests of perRequest events. runID prefixes every
// event_id, so ids are unique across runs (and the tool can recognise its own events).
func NewGenerator(pop *Population, perRequest int, shape RequestShape, runID string) (*Generator, error) {
	if pop.Size < 1 {
		return nil, fmt.Errorf("population size %d: want at least 1 user", pop.Size)
	}
	if pop.S <= 1 || pop.V < 1 {
		return nil, fmt.Errorf("zipf s=%v v=%v: want s > 1 and v >= 1", pop.S, pop.V)
	}
	if perRequest < 1 || perRequest > 500 {
		return nil, fmt.Errorf("%d events per request: the API takes 1 to 500", perRequest)
	}
	if shape != ShapeDevice && shape != ShapeMixed {
		return nil, fmt.Errorf("request shape %q: want %s or %s", shape, ShapeDevice, ShapeMixed)
	}
	rng := rand.New(rand.NewPCG(pop.Seed, 0x5eed))
	g := &Generator{pop: pop, rng: rng, zipf: rand.NewZipf(rng, pop.S, pop.V, uint64(pop.Size-1)),
		runID: runID, PerRequest: perRequest, Shape: shape}
	sum := 0.0
	for _, m := range eventMix {
		sum += m.Share
		g.cumulative = append(g.cumulative, sum)
	}
	return g, nil
}

// Request is one generated request.
type Request struct {
	Body   []byte
	Events []*event
	// Consented[i] tells whether Events[i] carries ads_personalization: true (only those reach
	// Meta).
	Consented []bool
	// Users[i] is the rank of the user of Events[i].
	Users []int
}

// Next draws the next request; event times lie in the minute before now (an SDK flush).
func (g *Generator) Next(now time.Time) Request {
	n := g.PerRequest
	req := Request{Events: make([]*event, n), Consented: make([]bool, n), Users: make([]int, n)}
	var u User
	for i := 0; i < n; i++ {
		if i == 0 || g.Shape == ShapeMixed {
			u = g.pop.User(int(g.zipf.Uint64()))
		}
		g.seq++
		at := now.Add(-time.Duration(g.rng.IntN(60)) * time.Second)
		name := g.pickName()
		ev := &event{
			EventID:   g.runID + "-" + strconv.FormatUint(g.seq, 36),
			EventName: name,
			EventTime: at.Unix(),
			User:      &u.Fields,
			Device:    &u.Device,
			Consent:   u.Consents,
			Custom:    g.customData(name, u.Currency, now),
		}
		req.Events[i], req.Consented[i], req.Users[i] = ev, u.Consent, u.Rank
		if g.Shape == ShapeMixed {
			// Each event needs its own copies: the user changes with the next event.
			uf, dv := u.Fields, u.Device
			ev.User, ev.Device = &uf, &dv
		}
	}
	req.Body = encodeEvents(req.Events)
	return req
}

// encodeEvents returns the request body of events.
func encodeEvents(evs []*event) []byte {
	b, err := json.Marshal(eventRequest{Events: evs})
	if err != nil {
		panic("loadtest: encode request: " + err.Error()) // plain structs: cannot fail
	}
	return b
}

func (g *Generator) pickName() string {
	x := g.rng.Float64() * g.cumulative[len(g.cumulative)-1]
	for i, c := range g.cumulative {
		if x < c {
			return eventMix[i].Name
		}
	}
	return eventMix[len(eventMix)-1].Name
}

// customData returns what the SDK sends with an event of that name.
func (g *Generator) customData(name, currency string, now time.Time) *customData {
	r := g.rng
	sku := func() string { return "sku-" + strconv.Itoa(1+r.IntN(5000)) }
	price := func() float64 {
		// Log-normal basket prices around 25 in the user's currency (JPY: whole yen).
		v := math.Exp(math.Log(25) + 0.8*r.NormFloat64())
		if currency == "JPY" {
			return math.Round(v * 150)
		}
		return math.Round(v*100) / 100
	}
	switch name {
	case "fb_mobile_content_view":
		return &customData{ContentIDs: []string{sku()}, ContentType: "product"}
	case "fb_mobile_search":
		return &customData{SearchString: []string{"running shoes", "red dress", "usb-c cable", "coffee"}[r.IntN(4)]}
	case "fb_mobile_add_to_cart", "fb_mobile_add_to_wishlist":
		id, p := sku(), price()
		return &customData{Value: &p, Currency: currency, ContentIDs: []string{id}, ContentType: "product",
			Contents: []content{{ID: id, Quantity: 1, ItemPrice: p}}}
	case "fb_mobile_initiated_checkout":
		p := price()
		return &customData{Value: &p, Currency: currency, NumItems: 1 + r.IntN(3)}
	case "fb_mobile_purchase":
		items := 1 + r.IntN(3)
		c := &customData{Currency: currency, ContentType: "product", NumItems: items,
			OrderID: "o-" + strconv.FormatUint(g.seq, 36)}
		total := 0.0
		for j := 0; j < items; j++ {
			id, p := sku(), price()
			c.ContentIDs = append(c.ContentIDs, id)
			c.Contents = append(c.Contents, content{ID: id, Quantity: 1, ItemPrice: p})
			total += p
		}
		total = math.Round(total*100) / 100
		c.Value = &total
		return c
	case "Subscribe":
		p := 9.99
		if currency == "JPY" {
			p = 1500
		}
		return &customData{Value: &p, Currency: currency, SubExpiresAt: now.Add(30 * 24 * time.Hour).Unix()}
	}
	return nil
}

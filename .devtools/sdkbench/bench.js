// The SDK side of BenchmarkParse100 (shared/domain/appevent/bench_test.go): Meta's official Node
// Business SDK (facebook-nodejs-business-sdk, pinned in package.json) doing the ingest hot path's
// normalise + hash + serialise work on the same 100-event request. Run by `make bench-ingest`,
// which prints it beside the Go figures; alone: `node bench.js [-count 5] [-benchtime 1s] [-all] [-print]`.
//
// Each iteration takes the request body (the same JSON the Go benchmark builds: validEvent() of
// parse_test.go, case distinct-users; -all adds all-distinct and one-device) and, as a Node
// server built on the SDK would, JSON.parses it and per event builds UserData from the raw personal
// fields (the SDK trims, lowercases, normalises and SHA-256 hashes them in normalize()), CustomData
// with its Content, AppData with ExtendedDeviceInfo (extinfo) and a ServerEvent, then serialises
// the request payload: every event's normalize() and JSON.stringify({data}), without sending it.
// Output lines have the Go benchmark format ("BenchmarkSDK100/<case> N x ns/op y ns/event").
//
// Differences in the work done, so that the ratio is read fairly:
//   - The SDK hashes 11 fields (em ph ge db ln fn ct st zp country app_user_id) with js-sha256, a
//     pure-JS SHA-256, for every event: it caches nothing, so its three cases cost the same. The
//     Go parser hashes 11 fields too (external_id for app_user_id) but derives each distinct user
//     object once per request, so distinct-users and one-device reuse earlier events' work.
//   - The Go parser also derives a pseudonymous user key (HMAC-SHA-256), validates every field and
//     the event (names, times, sizes, UTF-8, control characters, consent), normalises more (the
//     US state "California" to "ca", the date of birth to YYYYMMDD, ZIP+4 to 5 digits, Unicode
//     NFC) and writes Kinesis stream records (envelope v2) rather than a CAPI payload. The SDK
//     validates only the email (email-validator), country (ISO 3166-1 table), phone length and
//     currency (ISO 4217 list); it hashes the state and the date of birth as given.
//   - The SDK's payload is its own: it serialises extinfo as an object keyed "0".."15" (CAPI
//     documents an array), and app_user_id hashed rather than external_id.
//   - The SDK starts from a parsed object; JSON.parse of the body is included here (the Go side
//     parses bytes), and its share is printed separately (BenchmarkJSONParse100).
'use strict';

const bizSdk = require('facebook-nodejs-business-sdk');
const { UserData, CustomData, Content, AppData, ExtendedDeviceInfo, ServerEvent } = bizSdk;

const N = 100;
// testNow of parse_test.go (2026-11-28T12:00:00Z) minus one hour, as validEvent() sets it.
const EVENT_TIME = Date.UTC(2026, 10, 28, 12, 0, 0) / 1000 - 3600;

// validEvent of shared/domain/appevent/parse_test.go.
function validEvent() {
  return {
    event_id: '9f1c2d3e-0000-4000-8000-000000000001',
    event_name: 'fb_mobile_purchase',
    event_time: EVENT_TIME,
    user: {
      app_user_id: 'u-123', anon_id: 'install-42', madid: '38400000-8CF0-11BD-B23E-10B96E40000D',
      email: 'Mary.Major@Example.com', phone: '+1 (650) 555-1212', first_name: 'Mary',
      last_name: 'Major', gender: 'female', date_of_birth: '1990-04-12', city: 'Menlo Park',
      state: 'California', zip: '94025-1234', country: 'US', client_ip_address: '203.0.113.7',
      client_user_agent: 'Shop/7.7.1 (iPhone; iOS 17.4.1)',
    },
    device: {
      platform: 'ios', app_package: 'com.example.shop', app_version: '7.7.1', app_build: '771',
      os_version: '17.4.1', device_model: 'iPhone15,2', locale: 'en_US', timezone_abbr: 'PDT',
      carrier: 'T-Mobile', screen_width: 1179, screen_height: 2556, screen_density: 3.0,
      cpu_cores: 6, storage_total_gb: 128, storage_free_gb: 40, timezone: 'America/Los_Angeles',
    },
    consent: {
      advertiser_tracking_enabled: true, application_tracking_enabled: true, ads_personalization: true,
    },
    custom_data: {
      value: 12.5, currency: 'usd', content_ids: ['sku-1'], order_id: 'o-1', num_items: 1,
      contents: [{ id: 'sku-1', quantity: 1, item_price: 12.5 }],
    },
  };
}

// The cases of BenchmarkParse100, same names and same events.
const NAMES = ['fb_mobile_activate_app', 'fb_mobile_content_view', 'fb_mobile_add_to_cart', 'fb_mobile_purchase'];
const CASES = {
  'distinct-users': (i) => {
    const e = validEvent();
    e.user.app_user_id = `u-${i % 37}`;
    e.user.email = `user${i % 37}@example.com`;
    return e;
  },
  'all-distinct': (i) => {
    const e = validEvent();
    e.user.app_user_id = `u-${i}`;
    e.user.email = `user${i}@example.com`;
    return e;
  },
  'one-device': (i) => {
    const e = validEvent();
    e.event_name = NAMES[i % NAMES.length];
    return e;
  },
};

function requestBody(event) {
  const events = [];
  for (let i = 0; i < N; i++) {
    const e = event(i);
    e.event_id = `9f1c2d3e-0000-4000-8000-${String(i).padStart(12, '0')}`;
    events.push(e);
  }
  return JSON.stringify({ events });
}

// serverEvent builds the SDK's ServerEvent of one app event, every field through the SDK's setters.
function serverEvent(e) {
  const u = e.user;
  const userData = new UserData()
    .setEmail(u.email).setPhone(u.phone).setFirstName(u.first_name).setLastName(u.last_name)
    .setGender(u.gender).setDateOfBirth(u.date_of_birth).setCity(u.city).setState(u.state)
    .setZip(u.zip).setCountry(u.country).setAppUserId(u.app_user_id).setAnonId(u.anon_id)
    .setMadid(u.madid).setClientIpAddress(u.client_ip_address).setClientUserAgent(u.client_user_agent);

  const cd = e.custom_data;
  const contents = cd.contents.map((c) => new Content().setId(c.id).setQuantity(c.quantity).setItemPrice(c.item_price));
  const customData = new CustomData()
    .setValue(cd.value).setCurrency(cd.currency).setContentIds(cd.content_ids).setOrderId(cd.order_id)
    .setNumItems(cd.num_items).setContents(contents);

  const d = e.device;
  const extinfo = new ExtendedDeviceInfo()
    .setExtInfoVersion(d.platform === 'android' ? 'a2' : 'i2').setAppPackageName(d.app_package)
    .setShortVersion(d.app_version).setLongVersion(d.app_build).setOsVersion(d.os_version)
    .setDeviceModelName(d.device_model).setLocale(d.locale).setTimezoneAbbreviation(d.timezone_abbr)
    .setCarrier(d.carrier).setScreenWidth(d.screen_width).setScreenHeight(d.screen_height)
    .setScreenDensity(d.screen_density).setCpuCoreCount(d.cpu_cores).setTotalDiskSpaceGb(d.storage_total_gb)
    .setFreeDiskSpaceGb(d.storage_free_gb).setDeviceTimeZone(d.timezone);
  const appData = new AppData()
    .setAdvertiserTrackingEnabled(e.consent.advertiser_tracking_enabled)
    .setApplicationTrackingEnabled(e.consent.application_tracking_enabled)
    .setExtinfo(extinfo);

  return new ServerEvent()
    .setEventName(e.event_name).setEventTime(e.event_time).setEventId(e.event_id).setActionSource('app')
    .setUserData(userData).setCustomData(customData).setAppData(appData);
}

// ingest is one iteration: the request body to the serialised CAPI payload, as EventRequest.execute
// builds it (normalize() of every event) short of the HTTP call.
function ingest(body) {
  const req = JSON.parse(body);
  const data = new Array(req.events.length);
  for (let i = 0; i < req.events.length; i++) {
    data[i] = serverEvent(req.events[i]).normalize();
  }
  return JSON.stringify({ data });
}

function parseOnly(body) {
  return JSON.parse(body).events.length;
}

// bench runs fn like testing.B: grows the iteration count until one run lasts benchtime, and
// returns ns per iteration. sink keeps the results alive.
let sink = 0;
function bench(fn, arg, benchtimeNs) {
  let n = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += fn(arg).length || 1;
    const ns = Number(process.hrtime.bigint() - t0);
    if (ns >= benchtimeNs || n >= 1e9) return { n, nsPerOp: ns / n };
    // The next count as testing.B predicts it: aim 20% over, at most 100x more.
    const next = Math.ceil((benchtimeNs * 1.2 * n) / Math.max(ns, 1));
    n = Math.max(n + 1, Math.min(next, 100 * n));
  }
}

function main() {
  const args = process.argv.slice(2);
  const flag = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : def;
  };
  const count = Number(flag('-count', '5'));
  const benchtime = flag('-benchtime', '1s');
  const benchtimeNs = Number(benchtime.replace(/s$/, '')) * 1e9;
  if (!(count > 0) || !(benchtimeNs > 0)) {
    console.error('usage: node bench.js [-count 5] [-benchtime 1s] [-all] [-print]');
    process.exit(2);
  }

  if (args.includes('-print')) {
    const out = JSON.parse(ingest(requestBody(CASES['distinct-users'])));
    console.log(JSON.stringify(out.data[0], null, 2));
    return;
  }

  const sdkVersion = require('facebook-nodejs-business-sdk/package.json').version;
  console.log(`sdk: facebook-nodejs-business-sdk ${sdkVersion}`);
  console.log(`node: ${process.version}`);
  // The SDK caches nothing, so the three cases cost it the same; distinct-users (the shape)
  // is the default, -all runs the other two as well.
  const names = args.includes('-all') ? Object.keys(CASES) : ['distinct-users'];
  for (const name of names) {
    const event = CASES[name];
    const body = requestBody(event);
    // Setup as in the Go benchmark: one run, checked; then a warm-up so the JIT has settled.
    const payload = JSON.parse(ingest(body));
    const hashed = Object.values(payload.data[0].user_data).filter((v) => /^[0-9a-f]{64}$/.test(Array.isArray(v) ? v[0] : v));
    if (payload.data.length !== N || hashed.length !== 11) {
      throw new Error(`setup ${name}: ${payload.data.length} events, ${hashed.length} hashed fields`);
    }
    bench(ingest, body, benchtimeNs);
    for (let c = 0; c < count; c++) {
      const r = bench(ingest, body, benchtimeNs);
      console.log(`BenchmarkSDK100/${name} \t${r.n}\t${r.nsPerOp.toFixed(0)} ns/op\t${(r.nsPerOp / N).toFixed(1)} ns/event`);
    }
  }
  const body = requestBody(CASES['distinct-users']);
  bench(parseOnly, body, benchtimeNs / 4);
  for (let c = 0; c < count; c++) {
    const r = bench(parseOnly, body, benchtimeNs / 4);
    console.log(`BenchmarkJSONParse100/distinct-users \t${r.n}\t${r.nsPerOp.toFixed(0)} ns/op\t${(r.nsPerOp / N).toFixed(1)} ns/event`);
  }
  if (sink === 0) console.log('');
}

main();

#!/usr/bin/env python3
"""Generates shared/domain/identity/iso_tables.go from Debian's iso-codes JSON (apt package iso-codes).

Run from the repo root: python3 .devtools/gen/iso_tables.py > shared/domain/identity/iso_tables.go && gofmt -w shared/domain/identity/iso_tables.go
The output is committed; this script only needs re-running when ISO lists change.
"""
import json, re, sys, unicodedata

SRC = '/usr/share/iso-codes/json/'
countries = json.load(open(SRC + 'iso_3166-1.json'))['3166-1']
subdivisions = json.load(open(SRC + 'iso_3166-2.json'))['3166-2']
currencies = json.load(open(SRC + 'iso_4217.json'))['4217']

# ITU-T E.164 country calling codes by ISO 3166-1 alpha-2 (not part of iso-codes).
CALLING = dict(x.split(':') for x in '''
AD:376 AE:971 AF:93 AG:1 AI:1 AL:355 AM:374 AO:244 AQ:672 AR:54 AS:1 AT:43 AU:61 AW:297 AX:358 AZ:994
BA:387 BB:1 BD:880 BE:32 BF:226 BG:359 BH:973 BI:257 BJ:229 BL:590 BM:1 BN:673 BO:591 BQ:599 BR:55 BS:1
BT:975 BV:47 BW:267 BY:375 BZ:501 CA:1 CC:61 CD:243 CF:236 CG:242 CH:41 CI:225 CK:682 CL:56 CM:237 CN:86
CO:57 CR:506 CU:53 CV:238 CW:599 CX:61 CY:357 CZ:420 DE:49 DJ:253 DK:45 DM:1 DO:1 DZ:213 EC:593 EE:372
EG:20 EH:212 ER:291 ES:34 ET:251 FI:358 FJ:679 FK:500 FM:691 FO:298 FR:33 GA:241 GB:44 GD:1 GE:995 GF:594
GG:44 GH:233 GI:350 GL:299 GM:220 GN:224 GP:590 GQ:240 GR:30 GS:500 GT:502 GU:1 GW:245 GY:592 HK:852
HM:672 HN:504 HR:385 HT:509 HU:36 ID:62 IE:353 IL:972 IM:44 IN:91 IO:246 IQ:964 IR:98 IS:354 IT:39 JE:44
JM:1 JO:962 JP:81 KE:254 KG:996 KH:855 KI:686 KM:269 KN:1 KP:850 KR:82 KW:965 KY:1 KZ:7 LA:856 LB:961
LC:1 LI:423 LK:94 LR:231 LS:266 LT:370 LU:352 LV:371 LY:218 MA:212 MC:377 MD:373 ME:382 MF:590 MG:261
MH:692 MK:389 ML:223 MM:95 MN:976 MO:853 MP:1 MQ:596 MR:222 MS:1 MT:356 MU:230 MV:960 MW:265 MX:52 MY:60
MZ:258 NA:264 NC:687 NE:227 NF:672 NG:234 NI:505 NL:31 NO:47 NP:977 NR:674 NU:683 NZ:64 OM:968 PA:507
PE:51 PF:689 PG:675 PH:63 PK:92 PL:48 PM:508 PN:64 PR:1 PS:970 PT:351 PW:680 PY:595 QA:974 RE:262 RO:40
RS:381 RU:7 RW:250 SA:966 SB:677 SC:248 SD:249 SE:46 SG:65 SH:290 SI:386 SJ:47 SK:421 SL:232 SM:378
SN:221 SO:252 SR:597 SS:211 ST:239 SV:503 SX:1 SY:963 SZ:268 TC:1 TD:235 TF:262 TG:228 TH:66 TJ:992
TK:690 TL:670 TM:993 TN:216 TO:676 TR:90 TT:1 TV:688 TW:886 TZ:255 UA:380 UG:256 UM:1 US:1 UY:598 UZ:998
VA:39 VC:1 VE:58 VG:1 VI:1 VN:84 VU:678 WF:681 WS:685 YE:967 YT:262 ZA:27 ZM:260 ZW:263
'''.split())

# Names people type that ISO does not list (endonyms, short forms, abbreviations).
ALIASES = {
    'uk': 'GB', 'greatbritain': 'GB', 'britain': 'GB', 'england': 'GB', 'scotland': 'GB', 'wales': 'GB',
    'northernireland': 'GB', 'america': 'US', 'unitedstatesofamerica': 'US', 'usa': 'US', 'us': 'US',
    'holland': 'NL', 'nederland': 'NL', 'thenetherlands': 'NL', 'deutschland': 'DE', 'russia': 'RU',
    'southkorea': 'KR', 'korea': 'KR', 'republicofkorea': 'KR', 'northkorea': 'KP', 'vietnam': 'VN',
    'iran': 'IR', 'syria': 'SY', 'laos': 'LA', 'bolivia': 'BO', 'venezuela': 'VE', 'tanzania': 'TZ',
    'moldova': 'MD', 'czechrepublic': 'CZ', 'turkey': 'TR', 'turkiye': 'TR', 'ivorycoast': 'CI',
    'uae': 'AE', 'espana': 'ES', 'brasil': 'BR', 'mexico': 'MX', 'italia': 'IT', 'schweiz': 'CH',
    'suisse': 'CH', 'svizzera': 'CH', 'osterreich': 'AT', 'polska': 'PL', 'sverige': 'SE', 'norge': 'NO',
    'danmark': 'DK', 'suomi': 'FI', 'nippon': 'JP', 'nihon': 'JP', 'prc': 'CN', 'taiwan': 'TW',
    'hongkong': 'HK', 'macau': 'MO', 'macao': 'MO', 'palestine': 'PS', 'vatican': 'VA', 'burma': 'MM',
    'micronesia': 'FM', 'congo': 'CG', 'drc': 'CD', 'democraticrepublicofthecongo': 'CD',
    'eswatini': 'SZ', 'swaziland': 'SZ', 'capeverde': 'CV', 'easttimor': 'TL', 'macedonia': 'MK',
    'northmacedonia': 'MK', 'ksa': 'SA', 'saudi': 'SA', 'hellas': 'GR', 'ellada': 'GR', 'eire': 'IE',
    'belgie': 'BE', 'belgique': 'BE', 'magyarorszag': 'HU', 'hrvatska': 'HR', 'romania': 'RO',
    'bharat': 'IN', 'zhongguo': 'CN',
}

def key(s):
    s = unicodedata.normalize('NFKD', s)
    s = ''.join(ch for ch in s if not unicodedata.combining(ch))
    return re.sub(r'[^a-z]', '', s.lower())

names = {}
ambiguous = set()
def add(k, a2):
    if not k:
        return
    if k in names and names[k] != a2:
        ambiguous.add(k)
    names[k] = a2

for c in countries:
    a2 = c['alpha_2']
    for f in ('alpha_3', 'name', 'common_name', 'official_name'):
        if f in c:
            add(key(c[f]), a2)
for k, a2 in ALIASES.items():
    names[k] = a2  # aliases win over generated keys
    ambiguous.discard(k)
for k in ambiguous:
    del names[k]
for c in countries:  # alpha-2 codes always map to themselves
    names[c['alpha_2'].lower()] = c['alpha_2']

missing = [c['alpha_2'] for c in countries if c['alpha_2'] not in CALLING]
if missing:
    sys.exit('no calling code for ' + ','.join(missing))

us_states = {}
for s in subdivisions:
    if s['code'].startswith('US-'):
        code = s['code'][3:].lower()
        us_states[key(s['name'])] = code
        us_states[code] = code

w = sys.stdout.write
w('// Code generated by .devtools/gen/iso_tables.py from Debian iso-codes; DO NOT EDIT.\n\n')
w('package identity\n\n')
w('// countryCodes maps lowercase ISO 3166-1 alpha-2 codes to E.164 calling codes.\n')
w('var countryCodes = map[string]string{\n')
for c in sorted(countries, key=lambda c: c['alpha_2']):
    w('\t"%s": "%s",\n' % (c['alpha_2'].lower(), CALLING[c['alpha_2']]))
w('}\n\n')
w('// countryNames maps a country written as letters a-z only (alpha-2, alpha-3, ISO names, common\n')
w('// names and a few endonyms, accents folded) to its lowercase alpha-2 code.\n')
w('var countryNames = map[string]string{\n')
for k in sorted(names):
    w('\t"%s": "%s",\n' % (k, names[k].lower()))
w('}\n\n')
w('// usStates maps US state and territory names (letters only) and codes to lowercase codes.\n')
w('var usStates = map[string]string{\n')
for k in sorted(us_states):
    w('\t"%s": "%s",\n' % (k, us_states[k]))
w('}\n\n')
w('// currencies is the set of ISO 4217 alphabetic currency codes.\n')
w('var currencies = map[string]struct{}{\n')
for c in sorted(currencies, key=lambda c: c['alpha_3']):
    w('\t"%s": {},\n' % c['alpha_3'])
w('}\n')

package identity

import "time"

// normalizeDate appends a date of birth as YYYYMMDD. Accepted: YYYYMMDD; YYYY-MM-DD, YYYY/MM/DD
// and YYYY.MM.DD (a trailing time such as "T00:00:00Z" is ignored); M/D/YYYY and M-D-YYYY read
// US-style (month first) unless the first number cannot be a month; D.M.YYYY read day first.
func normalizeDate(b []byte, s string) ([]byte, error) {
	var parts [3]int
	var widths [3]int
	var seps [2]byte
	n := 0
	i := 0
	for ; i < len(s) && n < 3; n++ {
		v, w := 0, 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' && w < 8 {
			v = v*10 + int(s[i]-'0')
			i++
			w++
		}
		if w == 0 {
			return nil, ErrDateOfBirth
		}
		parts[n], widths[n] = v, w
		if n < 2 && i < len(s) {
			if c := s[i]; c == '-' || c == '/' || c == '.' {
				seps[n] = c
				i++
				continue
			}
		}
		n++
		break
	}
	rest := s[i:]
	var y, m, d int
	switch {
	case n == 1 && widths[0] == 8 && rest == "":
		v := parts[0]
		y, m, d = v/10000, v/100%100, v%100
	case n == 3 && widths[0] == 4 && seps[0] == seps[1] && (rest == "" || (seps[0] == '-' && rest[0] == 'T')):
		y, m, d = parts[0], parts[1], parts[2]
	case n == 3 && widths[2] == 4 && widths[0] <= 2 && widths[1] <= 2 && seps[0] == seps[1] && rest == "":
		y = parts[2]
		if seps[0] == '.' || parts[0] > 12 {
			d, m = parts[0], parts[1]
		} else {
			m, d = parts[0], parts[1]
		}
	default:
		return nil, ErrDateOfBirth
	}
	if !validDate(y, m, d) {
		return nil, ErrDateOfBirth
	}
	return append(b,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10),
		byte('0'+m/10), byte('0'+m%10), byte('0'+d/10), byte('0'+d%10)), nil
}

// minCurrentYear is a year that has begun: the year this was written.
const minCurrentYear = 2026

func validDate(y, m, d int) bool {
	// Years before minCurrentYear are never in the future: only later ones need the clock.
	if y < 1900 || (y >= minCurrentYear && y > time.Now().Year()) || m < 1 || m > 12 || d < 1 {
		return false
	}
	return d <= daysIn(y, m)
}

// daysIn returns the number of days of month m (1-12) of year y in the Gregorian calendar.
func daysIn(y, m int) int {
	if m == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		return 29
	}
	return int(monthDays[m])
}

var monthDays = [13]uint8{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

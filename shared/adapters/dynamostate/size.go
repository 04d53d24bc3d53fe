package dynamostate

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/retarget-dev/retarget/shared/ports"
)

// UserItemSize is the size in bytes that DynamoDB bills for the item PutUser writes for rec:
// the sum over attributes of the name's UTF-8 length plus the value's size. A write costs
// ceil(size/1024) write units on the table, plus the due index's writes (KEYS_ONLY, one unit
// each): one when the entry appears, disappears or changes dueAt within its bucket, two when
// it moves to another bucket, none when dueAt stays. Invalid records are sized anyway.
func UserItemSize(rec ports.UserRecord) int {
	return itemSize(userItem(rec))
}

// ReadUserSize is the size in bytes that DynamoDB bills for the Query of ReadUser that finds
// read: the state item's and the consent item's sizes added up (the partition's cool-down
// item, about 60 bytes, aside). A strongly consistent Query costs ceil(size/4096) read units,
// at least one.
func ReadUserSize(read ports.UserRead) int {
	size := 0
	if read.Found {
		size += UserItemSize(read.Record)
	}
	if read.Consent != nil {
		size += itemSize(consentItem(*read.Consent))
	}
	return size
}

// itemSize applies AWS's item size rules ("DynamoDB item sizes and formats") to the
// attribute types this package writes.
func itemSize(item map[string]types.AttributeValue) int {
	size := 0
	for name, v := range item {
		size += len(name) + valueSize(v)
	}
	return size
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

// numberSize is the stored size of a decimal number without exponent. AWS documents it as
// "approximately 1 byte per two significant digits, plus 1"; exactly, DynamoDB stores base-100
// digits aligned on the decimal point, without leading or trailing zero pairs (so 120 takes
// two digit bytes, 1200 one), plus one byte, plus one for a negative number. Zero is 1 byte.
// dynalite, whose sizes were checked against DynamoDB, computes the same.
func numberSize(s string) int {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	whole, frac, _ := strings.Cut(s, ".")
	whole = strings.TrimLeft(whole, "0")
	frac = strings.TrimRight(frac, "0")
	if whole == "" && frac == "" {
		return 1
	}
	if len(whole)%2 == 1 {
		whole = "0" + whole
	}
	if len(frac)%2 == 1 {
		frac += "0"
	}
	digits := whole + frac
	for strings.HasPrefix(digits, "00") {
		digits = digits[2:]
	}
	for strings.HasSuffix(digits, "00") {
		digits = digits[:len(digits)-2]
	}
	n := 1 + len(digits)/2
	if neg {
		n++
	}
	return n
}

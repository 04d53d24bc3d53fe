package measure

// WithEmptyLists returns r with every nil list made empty, so that its JSON has [] where the
// contract (the OpenAPI document's Report) says array, never null: clients iterate without a
// null check. The API and `retarget report --json` send reports through it.
func (r Report) WithEmptyLists() Report {
	r.Audiences = orEmpty(r.Audiences)
	r.Groups = orEmpty(r.Groups)
	for i := range r.Groups {
		r.Groups[i].Audiences = orEmpty(r.Groups[i].Audiences)
		r.Groups[i].AdSets = orEmpty(r.Groups[i].AdSets)
	}
	for i := range r.Audiences {
		a := &r.Audiences[i]
		a.ContaminatedDays = orEmpty(a.ContaminatedDays)
		a.Days = orEmpty(a.Days)
		a.Notes = orEmpty(a.Notes)
	}
	return r
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

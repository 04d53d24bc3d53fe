// Package audiences is the pure domain of the Custom Audience sync: an app's audience mapping
// compiled from its config (appconfig.Audience), each segment's treated audience and its holdout
// audience ("<segment>:holdout"), which audiences a user belongs in given their segments
// (exclusive groups applied) and their holdout arm, the multi-key rows uploaded for them, how
// rows are cut into requests within Meta's limits, and the guard against removal floods.
//
// The sync's path when a user's membership in segment s changed:
//
//	app, _ := audiences.Compile(cfgApp)                   // once, at start
//	want := app.DesiredFor(userKey, segmentsNow, state)   // audience keys; segmentsNow from segments.Evaluate
//	for _, key := range app.Affected(s) {                 // the audiences (both arms) that may change
//	    au, _ := app.Audience(key)
//	    in, was := slices.Contains(want, key), wasUploaded(key)
//	    switch {
//	    case in && !was:
//	        row, ok := au.Row(userKey, state)        // !ok: nothing to match; count, skip
//	    case was && !in:
//	        row, _ := au.RemovalRow(userKey, state)  // EXTERN_ID matches the add
//	    }
//	}
//	// per audience and direction, once the rows are collected:
//	err := audiences.RemovalGuard(app.Rules().MaxRemovalFraction, size, len(removals))
//	for _, req := range audiences.Chunk(rows, au.Schema(), audiences.MaxRows, app.Rules().MaxPayloadBytes) {
//	    // upload req; the Graph client sends audiences.AppendPayload(nil, au.Schema(), req),
//	    // the payload Chunk measured
//	}
//
// No I/O: no AWS, no HTTP. README.md holds the decisions (identifier columns, the byte cap).
package audiences

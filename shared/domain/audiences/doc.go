// Package audiences is the pure domain of the Custom Audience sync: an app's audience mapping
// compiled from its config (appconfig.Audience), which audiences a user belongs in given their
// segments (exclusive groups applied), the multi-key rows uploaded for them, how rows are cut
// into requests within Meta's limits, and the guard against removal floods.
//
// The sync's path when a user's membership in segment s changed:
//
//	app, _ := audiences.Compile(cfgApp)              // once, at start
//	want := app.Desired(segmentsNow)                 // segmentsNow from segments.Evaluate
//	for _, seg := range app.Affected(s) {            // the audiences that may change
//	    au, _ := app.Audience(seg)
//	    in, was := slices.Contains(want, seg), wasUploaded(seg)
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

# Reads `go test -bench BenchmarkParse100` and `node bench.js` output (Go benchmark format) and
# prints the median ns/event of each benchmark and the SDK/Go ratio per case (make bench-ingest):
# the ratio of the medians, and the median of each round's ratio (a Go run and the SDK run after
# it: the machine's drift falls on both).
/^sdk: / { sdk = $2 " " $3 }
/^node: / { node = $2 }
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) if ($i == "ns/event") { v[name] = v[name] " " $(i-1); n[name]++; x = $(i-1) }
	c = name; sub(/^.*\//, "", c)
	if (name ~ /^BenchmarkParse100\//) last[c] = x
	if (name ~ /^BenchmarkSDK100\// && last[c] > 0) { r[c] = r[c] " " x / last[c]; last[c] = 0 }
}
function median(s,    a, k, i, j, t) {
	k = split(s, a, " ")
	for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
}
END {
	split("distinct-users all-distinct one-device", cases, " ")
	printf "\nIngest hot path, 100-event request, median µs/event (%s, node %s)\n", sdk, node
	printf "  %-16s %12s %12s %8s %8s %6s\n", "case", "Go parser", "Node SDK", "ratio", "rounds", "runs"
	for (c = 1; c <= 3; c++) {
		g = "BenchmarkParse100/" cases[c]; s = "BenchmarkSDK100/" cases[c]
		# The SDK caches nothing: without its own run of a case, its distinct-users figure stands.
		if (!n[s]) s = "BenchmarkSDK100/distinct-users"
		if (!n[g] || !n[s]) { printf "  %-16s missing\n", cases[c]; bad = 1; continue }
		gm = median(v[g]) / 1000; sm = median(v[s]) / 1000
		rr = r[cases[c]] == "" ? "-" : sprintf("%.1fx", median(r[cases[c]]))
		printf "  %-16s %12.2f %12.2f %7.1fx %8s %3d/%d\n", cases[c], gm, sm, sm / gm, rr, n[g], n[s]
	}
	p = "BenchmarkJSONParse100/distinct-users"
	if (n[p]) printf "  (the SDK figures include JSON.parse of the body: %.2f µs/event)\n", median(v[p]) / 1000
	printf "  goal: distinct-users <= 1.5 µs/event and >= 15x the SDK\n"
	exit bad
}
